"""KD Quality Focal Loss: binary (sigmoid) distillation of class logits, focal-weighted.

CrossKD's classification KD (Wang et al., CrossKD: Cross-Head Knowledge Distillation for Dense
Object Detection, CVPR 2024, https://arxiv.org/abs/2306.11369) and BCKD's binary classification
KD (Yang et al., Bridging Cross-task Protocol Inconsistency for Distillation in Dense Object
Detection, ICCV 2023, https://arxiv.org/abs/2308.14286).
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor

from mmkd.registry import MODELS
from .utils import check_reduction, check_row_weight, float32_loss


@MODELS.register_module()
class KDQualityFocalLoss(nn.Module):
    r"""Quality-focal binary KD between student and teacher class logits.

    With :math:`t = \sigma(z^T)` (detached) and :math:`p = \sigma(z^S)`, per row i and class c:

    .. math::
        \ell_{ic} = \mathrm{BCE}(z^S_{ic}, t_{ic})\,|p_{ic} - t_{ic}|^{\beta},\qquad
        L = w_{loss}\cdot\frac{\sum_{i,c} w_i\,\ell_{ic}}{\mathrm{avg\_factor}}

    (the plain mean over the N x C elements when ``avg_factor`` is None), reduced by mmdet's
    ``weight_reduce_loss`` (``avg_factor`` + float32 eps). Matches jbwang1997/CrossKD
    ``mmdet/models/losses/kd_loss.py`` ``kd_quality_focal_loss`` L44-59 and ``KDQualityFocalLoss``
    L120-170 (the row weight repeated over the classes, L51-52). TinyTigerPan/BCKD
    ``mmdet/models/losses/kd_loss.py`` ``novel_kd_loss`` / ``NovelKDLoss`` L11-85 is the same
    formula summed over the classes of a row before the row weight is applied, so with an
    ``avg_factor`` (as both official heads call it) the two are equal; without one, BCKD's mean
    runs over the N rows and is C times this one. The teacher is detached; float32 compute
    (see :mod:`mmkd.models.losses.utils`).

    Args:
        beta (float): Exponent of the focal factor. Defaults to 1.0 (both official configs).
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): 'mean' (default), 'sum' or 'none' (N x C elements), as mmdet.
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0,
                 reduction: str = 'mean') -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f'KDQualityFocalLoss: beta must be >= 0, got {beta}.')
        check_reduction(reduction, 'KDQualityFocalLoss')
        self.beta = beta
        self.loss_weight = loss_weight
        self.reduction = reduction

    @float32_loss
    def forward(self,
                pred: Tensor,
                soft_label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """Forward.

        Args:
            pred (Tensor): Student class logits, shape (N, C).
            soft_label (Tensor): Teacher class logits, same shape (detached here).
            weight (Tensor, optional): Per-row weight, shape (N,).
            avg_factor (float, optional): Divisor of the weighted sum (reduction 'mean').
        """
        if pred.dim() != 2 or pred.shape != soft_label.shape:
            raise ValueError(f'KDQualityFocalLoss expects student and teacher logits of one '
                             f'shape (rows x classes); got {tuple(pred.shape)} and '
                             f'{tuple(soft_label.shape)}.')
        check_row_weight(weight, pred, 'KDQualityFocalLoss')
        if pred.shape[0] == 0 and self.reduction != 'none':
            return pred.sum() * 0.
        target = soft_label.detach().sigmoid()
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
        loss = loss * (pred.sigmoid() - target).abs().pow(self.beta)
        if weight is not None:
            weight = weight[:, None].expand_as(loss)
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction=self.reduction, avg_factor=avg_factor)
