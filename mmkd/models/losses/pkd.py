"""PKD: General Distillation Framework for Object Detectors via Pearson Correlation Coefficient.

Cao et al., NeurIPS 2022, https://arxiv.org/abs/2207.02039. Matches mmrazor's
``mmrazor/models/losses/pkd_loss.py`` L31-83 (the official implementation).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmkd.registry import MODELS
from .utils import Feats, float32_loss, paired_levels


def pkd_channel_loss(norm_S: torch.Tensor, norm_T: torch.Tensor) -> torch.Tensor:
    r"""PKD's loss of each channel, ``C``: :math:`\tfrac12\,\mathrm{mean}_{n,h,w}(\hat S -
    \hat T)^2` of the normalised maps (:meth:`PKDLoss.norm`); a level's loss is their mean.

    With M = N*H*W values per channel it is about :math:`(1 - r_c)(M - 1)/M`, r_c the
    channel's Pearson correlation (exactly so without the 1e-6 in the normalisation).
    """
    return (norm_S - norm_T).pow(2).mean(dim=(0, 2, 3)) / 2


@MODELS.register_module()
class PKDLoss(nn.Module):
    r"""Pearson-correlation feature distillation.

    Each feature map is normalised per channel over batch and space jointly,
    :math:`\hat F = (F - \mu_c) / (\sigma_c + 10^{-6})` (unbiased std over N*H*W), then

    .. math:: L = w \sum_l \tfrac{1}{2}\,\mathrm{mean}_{n,c,h,w}(\hat S_l - \hat T_l)^2
              \approx w \sum_l (1 - \bar r_l)

    where :math:`\bar r_l` is the mean per-channel Pearson correlation of level l. Computed in
    float32 (see :mod:`mmkd.models.losses.utils`).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        resize_stu (bool): When spatial sizes differ, bilinearly resize the student to the
            teacher (True, default) or the teacher to the student. Unlike mmrazor, which
            compares heights only, the whole (H, W) is compared.
    """

    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.resize_stu = resize_stu

    @staticmethod
    def norm(feat: torch.Tensor) -> torch.Tensor:
        """Per-channel standardisation over (N, H, W), unbiased std as mmrazor."""
        n, c, h, w = feat.shape
        if n * h * w < 2:
            raise ValueError(
                f'PKDLoss needs at least 2 values per channel to compute a std, got a feature '
                f'of shape {tuple(feat.shape)} (batch {n} x {h}x{w}). Drop this level from '
                'the distilled levels or use a larger batch.')
        flat = feat.permute(1, 0, 2, 3).reshape(c, -1)
        mean = flat.mean(dim=-1, keepdim=True)
        std = flat.std(dim=-1, keepdim=True)
        return ((flat - mean) / (std + 1e-6)).reshape(c, n, h, w).permute(1, 0, 2, 3)

    @float32_loss
    def forward(self, preds_S: Feats, preds_T: Feats) -> torch.Tensor:
        """Sum of per-level losses.

        Args:
            preds_S (Tensor | Sequence[Tensor]): student features, N x C x H x W per level.
            preds_T (Tensor | Sequence[Tensor]): teacher features, same number of levels.
        """
        levels_S, levels_T = paired_levels(preds_S, preds_T, 'PKDLoss')
        loss = levels_S[0].new_zeros(())
        for i, (feat_S, feat_T) in enumerate(zip(levels_S, levels_T)):
            feat_T = feat_T.detach()
            if feat_S.shape[:2] != feat_T.shape[:2]:
                raise ValueError(
                    f'PKDLoss level {i}: student {tuple(feat_S.shape)} and teacher '
                    f'{tuple(feat_T.shape)} differ in batch or channels; PKD has no connector, '
                    'so add one (e.g. a 1x1 conv connector) or record matching layers.')
            if feat_S.shape[2:] != feat_T.shape[2:]:
                if self.resize_stu:
                    feat_S = F.interpolate(feat_S, feat_T.shape[2:], mode='bilinear')
                else:
                    feat_T = F.interpolate(feat_T, feat_S.shape[2:], mode='bilinear')
            loss = loss + pkd_channel_loss(self.norm(feat_S), self.norm(feat_T)).mean()
        return loss * self.loss_weight
