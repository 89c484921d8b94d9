"""KD: temperature KL divergence between student and teacher logits, row by row.

Hinton et al., Distilling the Knowledge in a Neural Network, https://arxiv.org/abs/1503.02531,
as HikariTJU/LD computes it (``mmdet/models/losses/kd_loss.py`` L10-88,
``KnowledgeDistillationKLDivLoss``; also mmdet 3.3's): LD's "Main KD" on the class logits of a
GFL head's positives (Zheng et al., CVPR 2022, https://arxiv.org/abs/2102.12252), and, through
:class:`~mmkd.models.losses.LDLoss`, LD itself on box-edge distributions.
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor

from mmkd.registry import MODELS
from .utils import check_reduction, check_row_weight, float32_loss

ROW_REDUCTIONS = ('mean', 'sum')


def distill_kl_div(preds_S: Tensor,
                   preds_T: Tensor,
                   tau: float,
                   reduction_over_logits: str = 'mean') -> Tensor:
    r"""Per-row temperature KL divergence.

    :math:`\ell_i = \tau^2 \cdot \mathrm{red}_j\, p^T_{ij}(\log p^T_{ij} - \log p^S_{ij})` with
    :math:`p = \mathrm{softmax}(z/\tau)` over dim 1 and ``red`` = mean (official LD) or sum
    (textbook KL). The teacher is detached.

    Returns:
        Tensor: shape (M,).
    """
    target = F.softmax(preds_T.detach() / tau, dim=1)
    kl = F.kl_div(F.log_softmax(preds_S / tau, dim=1), target, reduction='none')
    kl = kl.mean(dim=1) if reduction_over_logits == 'mean' else kl.sum(dim=1)
    return kl * (tau * tau)


@MODELS.register_module()
class KDLoss(nn.Module):
    r"""Temperature-softmax KL between rows of logits, averaged over the logits of a row.

    .. math::
        \ell_i = \tau^2 \cdot \frac{1}{K}\sum_k
            p^T_{ik}\big(\log p^T_{ik} - \log p^S_{ik}\big),\quad p=\mathrm{softmax}(z/\tau),
        \qquad L = w_{loss}\cdot\frac{\sum_i w_i\ell_i}{\mathrm{avg\_factor}}

    This is HikariTJU/LD's ``loss_kd`` (``KnowledgeDistillationKLDivLoss`` applied to class
    logits in ``ld_head.py`` ``loss_single``): softmax over the K class logits even for a
    sigmoid (QFL) head, KL **averaged** over classes (``.mean(1)``), times tau^2.
    ``reduction_over_classes='sum'`` gives the textbook Hinton KD. The row weights and
    ``avg_factor`` are reduced by mmdet's ``weight_reduce_loss`` (``avg_factor`` + float32
    eps). Defaults are LD's: ``loss_weight=10``, ``tau=2``
    (``configs/ld/ld_r50_gflv1_r101_fpn_coco_1x.py``). Teacher detached; float32 compute (see
    :mod:`mmkd.models.losses.utils`).

    Args:
        tau (float): Temperature. Defaults to 2.0.
        loss_weight (float): Weight of the loss. Defaults to 10.0.
        reduction_over_classes (str): 'mean' (official LD) or 'sum' (textbook KL).
        reduction (str): 'mean' (default), 'sum' or 'none' over rows, as mmdet.
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True
    #: what the softmax of a row runs over, for error messages
    axis_name = 'classes'

    def __init__(self,
                 tau: float = 2.0,
                 loss_weight: float = 10.0,
                 reduction_over_classes: str = 'mean',
                 reduction: str = 'mean') -> None:
        super().__init__()
        name = type(self).__name__
        if tau <= 0:
            raise ValueError(f'{name}: tau must be positive, got {tau}.')
        if reduction_over_classes not in ROW_REDUCTIONS:
            raise ValueError(f'{name}: the reduction over {self.axis_name} must be one of '
                             f'{ROW_REDUCTIONS}, got {reduction_over_classes!r}.')
        check_reduction(reduction, name)
        self.tau = tau
        self.loss_weight = loss_weight
        self.reduction_over_logits = reduction_over_classes
        self.reduction = reduction

    def _check(self, preds_S: Tensor, preds_T: Tensor, weight: Optional[Tensor]) -> None:
        name, what = type(self).__name__, self.axis_name
        if preds_S.dim() != 2:
            raise ValueError(f'{name} expects 2-D logits (rows x {what}), got a student tensor '
                             f'of shape {tuple(preds_S.shape)}; flatten the other dimensions '
                             'first.')
        if preds_S.shape != preds_T.shape:
            raise ValueError(f'{name}: student {tuple(preds_S.shape)} and teacher '
                             f'{tuple(preds_T.shape)} logits differ in shape; both must have '
                             f'the same rows and the same number of {what} (same head layout).')
        check_row_weight(weight, preds_S, name)

    @float32_loss
    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """Forward.

        Args:
            preds_S (Tensor): Student logits, shape (M, K).
            preds_T (Tensor): Teacher logits, same shape (detached here).
            weight (Tensor, optional): Per-row weight, shape (M,).
            avg_factor (float, optional): Divisor of the weighted sum (reduction 'mean').
        """
        self._check(preds_S, preds_T, weight)
        if preds_S.shape[0] == 0 and self.reduction != 'none':
            return preds_S.sum() * 0.
        loss = distill_kl_div(preds_S, preds_T, self.tau, self.reduction_over_logits)
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction=self.reduction, avg_factor=avg_factor)
