"""Class-logit KD as used by LD's "Main KD".

Hinton et al., Distilling the Knowledge in a Neural Network, https://arxiv.org/abs/1503.02531;
used in LD (Zheng et al., CVPR 2022, https://arxiv.org/abs/2102.12252) on the positive
locations of a GFL head.
"""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from .ld import check_pair, distill_kl_div, weight_reduce


@MODELS.register_module()
class KDLoss(nn.Module):
    r"""Temperature-softmax KL between class logits, averaged over classes.

    .. math::
        \ell_i = \tau^2 \cdot \frac{1}{K}\sum_k
            p^T_{ik}\big(\log p^T_{ik} - \log p^S_{ik}\big),\quad p=\mathrm{softmax}(z/\tau),
        \qquad L = w_{loss}\cdot\frac{\sum_i w_i\ell_i}{\mathrm{avg\_factor}}

    This is HikariTJU/LD's ``loss_kd`` (``KnowledgeDistillationKLDivLoss`` of
    ``mmdet/models/losses/kd_loss.py`` L10-88 applied to class logits in ``ld_head.py``
    ``loss_single``): softmax over the K class logits even for a sigmoid (QFL) head, KL
    **averaged** over classes (``.mean(1)``), times tau^2. ``reduction_over_classes='sum'``
    gives the textbook Hinton KD. Defaults are LD's: ``loss_weight=10``, ``tau=2``
    (``configs/ld/ld_r50_gflv1_r101_fpn_coco_1x.py``). Teacher detached; float32 compute.

    Args:
        tau (float): Temperature. Defaults to 2.0.
        loss_weight (float): Weight of the loss. Defaults to 10.0.
        reduction_over_classes (str): 'mean' (official LD) or 'sum' (textbook KL).
        reduction (str): 'mean' (default), 'sum' or 'none' over rows, as mmdet.
    """

    def __init__(self,
                 tau: float = 2.0,
                 loss_weight: float = 10.0,
                 reduction_over_classes: str = 'mean',
                 reduction: str = 'mean') -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}.')
        self.tau = tau
        self.loss_weight = loss_weight
        self.reduction_over_classes = reduction_over_classes
        self.reduction = reduction

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """Forward.

        Args:
            preds_S (Tensor): Student class logits, shape (M, K).
            preds_T (Tensor): Teacher class logits, shape (M, K) (detached here).
            weight (Tensor, optional): Per-row weight, shape (M,).
            avg_factor (float, optional): Divisor of the weighted sum (reduction 'mean').
        """
        check_pair(preds_S, preds_T, type(self).__name__, 'classes')
        if preds_S.shape[0] == 0 and self.reduction != 'none':
            return preds_S.float().sum() * 0.
        loss = distill_kl_div(preds_S, preds_T, self.tau, self.reduction_over_classes)
        return self.loss_weight * weight_reduce(loss, weight, avg_factor, self.reduction)
