"""CWD: Channel-wise Knowledge Distillation for Dense Prediction.

Shu et al., ICCV 2021, https://arxiv.org/abs/2011.13256. Matches mmrazor
``mmrazor/models/losses/cwd.py`` L20-51 (``form='kl'``) and pppppM/mmdetection-distiller
``mmdet/distillation/losses/cwd.py`` L23-55 (``form='ce'``, the code the CWD README links for
detection).
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .utils import Feats, check_same_shape, float32_loss, paired_levels


def channel_divergence(feat_S: Tensor, feat_T: Tensor, tau: float = 1.0,
                       form: str = 'kl') -> Tensor:
    r"""CWD's per-position terms, ``N x C x H x W``: summed over (H, W) they give each channel's
    divergence between the spatial distributions :math:`p = \mathrm{softmax}_{HW}(F_{n,c}/\tau)`.

    ``form='kl'``: :math:`p^T (\log p^T - \log p^S)` (its (H, W) sum is
    :math:`\mathrm{KL}(p^T_{n,c} \| p^S_{n,c})`); ``form='ce'``: :math:`-p^T \log p^S`. The loss
    of one level is ``tau**2 * channel_divergence(...).sum() / (N * C)``.
    """
    n, c, h, w = feat_T.shape
    feat_T, feat_S = feat_T.reshape(n * c, h * w), feat_S.reshape(n * c, h * w)
    if tau != 1.0:
        feat_T, feat_S = feat_T / tau, feat_S / tau
    logp_T = F.log_softmax(feat_T, dim=1)
    logp_S = F.log_softmax(feat_S, dim=1)
    if form == 'kl':
        terms = F.kl_div(logp_S, logp_T, reduction='none', log_target=True)
    else:
        terms = -(logp_T.exp() * logp_S)
    return terms.reshape(n, c, h, w)


@MODELS.register_module()
class ChannelWiseDivergence(nn.Module):
    r"""Channel-wise distillation: match each channel's spatial distribution.

    For every (image n, channel c) the map is turned into a distribution over the H*W positions,
    :math:`p = \mathrm{softmax}_{HW}(F_{n,c} / \tau)`, and

    .. math:: L = w\,\frac{\tau^2}{N C} \sum_{n,c} \mathrm{KL}(p^T_{n,c} \,\|\, p^S_{n,c})
              \quad(\texttt{form='kl'}), \qquad
              L = w\,\frac{\tau^2}{N C} \sum_{n,c} H(p^T_{n,c}, p^S_{n,c})
              \quad(\texttt{form='ce'}).

    Both have the same gradient; the cross-entropy value is offset by the (constant) teacher
    entropy, which is why it "never goes down" (TorchDistiller issue #4). Several levels given
    as tuples are summed.

    Deliberate differences: computed in float32 (softmax over H*W; see
    :mod:`mmkd.models.losses.utils`); with the optional align conv, ``form='ce'`` divides by
    the teacher's channel count C (the rows that are summed) where mmdetection-distiller
    divides by the student's.

    Args:
        tau (float): Temperature. Defaults to 1.0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        form (str): ``'kl'`` (mmrazor, default) or ``'ce'`` (mmdetection-distiller).
        student_channels (int, optional): With ``teacher_channels``, adds a 1x1 conv aligning
            the student's channels to the teacher's when they differ (mmdetection-distiller).
            Defaults to None (no align; channels must match).
        teacher_channels (int, optional): See ``student_channels``.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 form: str = 'kl',
                 student_channels: Optional[int] = None,
                 teacher_channels: Optional[int] = None) -> None:
        super().__init__()
        if form not in ('kl', 'ce'):
            raise ValueError(f"ChannelWiseDivergence form must be 'kl' or 'ce', got {form!r}")
        self.tau = tau
        self.loss_weight = loss_weight
        self.form = form
        if (student_channels is None) != (teacher_channels is None):
            raise ValueError('give both student_channels and teacher_channels, or neither')
        self.align: Optional[nn.Module] = None
        if student_channels is not None and student_channels != teacher_channels:
            self.align = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def _level(self, feat_S: Tensor, feat_T: Tensor, idx: int) -> Tensor:
        if self.align is not None:
            if feat_S.shape[1] != self.align.in_channels:
                raise ValueError(f'ChannelWiseDivergence level {idx}: student '
                                 f'{tuple(feat_S.shape)} but the align conv expects '
                                 f'{self.align.in_channels} channels')
            feat_S = self.align(feat_S)
        check_same_shape(
            feat_S, feat_T, 'ChannelWiseDivergence', idx,
            'for different channel counts set student_channels/teacher_channels (1x1 align) '
            'or add a connector.')
        n, c = feat_T.shape[:2]
        terms = channel_divergence(feat_S, feat_T, self.tau, self.form)
        return terms.sum() * (self.tau**2) / (n * c)

    @float32_loss
    def forward(self, preds_S: Feats, preds_T: Feats) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor | Sequence[Tensor]): Student maps, N x C x H x W (per level).
            preds_T (Tensor | Sequence[Tensor]): Teacher maps, same shapes.

        Returns:
            Tensor: float32 scalar.
        """
        levels_S, levels_T = paired_levels(preds_S, preds_T, 'ChannelWiseDivergence')
        loss = levels_S[0].new_zeros(())
        for idx, (feat_S, feat_T) in enumerate(zip(levels_S, levels_T)):
            loss = loss + self._level(feat_S, feat_T.detach(), idx)
        return self.loss_weight * loss
