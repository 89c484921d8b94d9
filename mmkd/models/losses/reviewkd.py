"""ReviewKD's hierarchical context loss (HCL).

Chen et al., "Distilling Knowledge via Knowledge Review", CVPR 2021,
https://arxiv.org/abs/2104.09044. Matches dvlab-research/ReviewKD
``Detection/model/kd_trans.py`` L75-92 (``hcl``); the student side is the output of
:class:`~mmkd.models.connectors.ABFConnector`.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .utils import Feats, float32_loss, paired_levels


def _pool_matrix(length: int, sizes: Sequence[int], device: torch.device) -> Tensor:
    """Rows averaging ``[floor(i L / l), ceil((i + 1) L / l))`` for each bin i of each size l.

    The same bins as ``F.adaptive_avg_pool2d``; shape ``(sum(sizes), length)``.
    """
    rows = []
    pos = torch.arange(length, device=device)
    for size in sizes:
        idx = torch.arange(size, device=device)
        start = (idx * length) // size
        end = ((idx + 1) * length + size - 1) // size
        inside = (pos >= start[:, None]) & (pos < end[:, None])
        rows.append(inside.float() / (end - start).float()[:, None])
    return torch.cat(rows)


def _adaptive_pools(feat: Tensor, sizes: Sequence[int]) -> List[Tensor]:
    """``[F.adaptive_avg_pool2d(feat, (l, l)) for l in sizes]`` in one pass over ``feat``.

    Pooling is separable and linear: ``A_h X A_w^T`` with the stacked bin matrices of all
    sizes reads the map once (and its backward writes it once), where separate pools read it
    once per size.
    """
    height, width = feat.shape[2:]
    mat_h = _pool_matrix(height, sizes, feat.device)
    mat_w = _pool_matrix(width, sizes, feat.device)
    pooled = torch.matmul(mat_h, torch.matmul(feat, mat_w.t()))  # N x C x sum(l) x sum(l)
    outs, offset = [], 0
    for size in sizes:
        outs.append(pooled[:, :, offset:offset + size, offset:offset + size])
        offset += size
    return outs


def hcl_pyramid(feat_S: Tensor, feat_T: Tensor,
                pool_sizes: Sequence[int] = (4, 2, 1)) -> List[Tuple[float, Tensor, Tensor]]:
    """HCL's pyramid of one level: ``(weight, student map, teacher map)`` for the full map
    (weight 1) and each of ``pool_sizes`` smaller than the level's height, pooled to
    ``l x l`` (weights 1/2, 1/4, ...). The level's loss is
    ``sum(w * mse(s, t)) / sum(w)`` over the entries.
    """
    pyramid = [(1.0, feat_S, feat_T)]
    sizes = [size for size in pool_sizes if size < feat_S.shape[2]]
    if sizes:
        weight = 1.0
        for p_S, p_T in zip(_adaptive_pools(feat_S, sizes), _adaptive_pools(feat_T, sizes)):
            weight /= 2.0
            pyramid.append((weight, p_S, p_T))
    return pyramid


@MODELS.register_module()
class HCLLoss(nn.Module):
    r"""Hierarchical context loss, summed over levels.

    Per level, with :math:`P_l` adaptive average pooling to :math:`l \times l`:

    .. math:: L = \frac{\mathrm{MSE}(S, T) + \sum_{k} 2^{-k}\,\mathrm{MSE}(P_{l_k}S, P_{l_k}T)}
              {1 + \sum_k 2^{-k}}

    where :math:`l_k` runs over the ``pool_sizes`` smaller than the level's height (k counts
    the sizes used, starting at 1). ``loss_weight`` multiplies the sum over levels (no
    division by the number of levels, as official).

    Deliberate difference (numerics only): the pooled maps of all sizes are computed with one
    separable matrix product per map (the same bins as ``adaptive_avg_pool2d``, equal up to
    rounding) instead of one pooling per size; computed in float32 (see
    :mod:`mmkd.models.losses.utils`).

    Args:
        loss_weight (float): Weight of the loss (ReviewKD's ``REVIEWKD_LOSS_WEIGHT``: 1.2 for
            R18<-R101, 1.0 for R50<-R101, 2.0 for MV2<-R50). Defaults to 1.0.
        pool_sizes (Sequence[int]): Pooled sizes. Defaults to (4, 2, 1).
    """

    def __init__(self, loss_weight: float = 1.0, pool_sizes: Sequence[int] = (4, 2, 1)) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.pool_sizes = tuple(pool_sizes)

    @float32_loss
    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Connector outputs, N x C x H x W per level.
            preds_T (Tensor | Sequence[Tensor]): Teacher levels, same shapes.
        """
        levels_S, levels_T = paired_levels(
            preds_S, preds_T, 'HCLLoss', same_shape='pass the student through '
            'mmkd.ABFConnector(in_channels, out_channels).')
        total = levels_S[0].new_zeros(())
        for feat_S, feat_T in zip(levels_S, levels_T):
            pyramid = hcl_pyramid(feat_S, feat_T.detach(), self.pool_sizes)
            loss = sum(weight * F.mse_loss(p_S, p_T) for weight, p_S, p_T in pyramid)
            total = total + loss / sum(weight for weight, _, _ in pyramid)
        return self.loss_weight * total
