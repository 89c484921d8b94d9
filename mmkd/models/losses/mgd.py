"""MGD: Masked Generative Distillation (the loss; the generator is ``MGDConnector``).

Yang et al., ECCV 2022, https://arxiv.org/abs/2205.01529. Matches yzd-v/MGD
``det/mmdet/distillation/losses/mgd.py`` L58-71 and mmrazor ``mmrazor/models/losses/mgd_loss.py``
L19-54.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .utils import Feats, float32_loss, paired_levels


@MODELS.register_module()
class MGDLoss(nn.Module):
    r"""Squared error between the generated student feature and the teacher feature.

    .. math:: L = \alpha_{mgd} \frac{1}{N} \sum_{n,c,h,w} (G(\mathrm{align}(F^S) \cdot M) - F^T)^2

    where the generation :math:`G(\cdot)` and the random mask :math:`M` live in
    :class:`~mmkd.models.connectors.MGDConnector` (its output is ``preds_S``). Several levels
    given as tuples are summed. Computed in float32 (a sum over C*H*W overflows fp16; see
    :mod:`mmkd.models.losses.utils`).

    Args:
        alpha_mgd (float): Weight of the loss. Defaults to 2e-5.
    """

    def __init__(self, alpha_mgd: float = 2e-5) -> None:
        super().__init__()
        self.alpha_mgd = alpha_mgd

    @float32_loss
    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Generated student maps (connector output),
                N x C x H x W per level.
            preds_T (Tensor | Sequence[Tensor]): Teacher maps, same shapes.
        """
        levels_S, levels_T = paired_levels(
            preds_S, preds_T, 'MGDLoss', same_shape='feed the student through '
            'mmkd.MGDConnector(student_channels, teacher_channels) first.')
        loss = levels_S[0].new_zeros(())
        for feat_S, feat_T in zip(levels_S, levels_T):
            loss = loss + F.mse_loss(feat_S, feat_T.detach(), reduction='sum') / feat_T.shape[0]
        return self.alpha_mgd * loss
