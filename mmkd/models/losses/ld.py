"""LD: Localization Distillation for Dense Object Detection.

Zheng et al., CVPR 2022, https://arxiv.org/abs/2102.12252 (official code: HikariTJU/LD).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS

# mmdet 3.x ``weight_reduce_loss`` adds this to ``avg_factor`` (guards avg_factor == 0).
_AVG_EPS = torch.finfo(torch.float32).eps


def distill_kl_div(preds_S: Tensor,
                   preds_T: Tensor,
                   tau: float,
                   reduction_over_bins: str = 'mean') -> Tensor:
    r"""Per-row temperature KL divergence, the element loss of LD and LD's class KD.

    :math:`\ell_i = \tau^2 \cdot \mathrm{red}_j\, p^T_{ij}(\log p^T_{ij} - \log p^S_{ij})` with
    :math:`p = \mathrm{softmax}(z/\tau)` over dim 1 and ``red`` = mean (official) or sum
    (textbook KL). The teacher is detached. Inputs are cast to float32.

    Returns:
        Tensor: shape (M,), float32.
    """
    if reduction_over_bins not in ('mean', 'sum'):
        raise ValueError(f"reduction_over_bins must be 'mean' or 'sum', got "
                         f'{reduction_over_bins!r}.')
    target = F.softmax(preds_T.detach().float() / tau, dim=1)
    kl = F.kl_div(F.log_softmax(preds_S.float() / tau, dim=1), target, reduction='none')
    kl = kl.mean(dim=1) if reduction_over_bins == 'mean' else kl.sum(dim=1)
    return kl * (tau * tau)


def weight_reduce(loss: Tensor,
                  weight: Optional[Tensor] = None,
                  avg_factor: Optional[float] = None,
                  reduction: str = 'mean') -> Tensor:
    """mmdet 3.x ``weight_reduce_loss`` semantics for a 1-D per-row loss.

    ``avg_factor`` given: ``sum(w * l) / (avg_factor + eps)`` (reduction 'mean') or the
    unreduced weighted loss ('none'); otherwise 'mean' / 'sum' / 'none' of ``w * l``.
    """
    if weight is not None:
        weight = weight.float()
        if weight.shape != loss.shape:
            raise ValueError(f'weight must have one value per row, shape {tuple(loss.shape)}, '
                             f'got {tuple(weight.shape)}.')
        loss = loss * weight
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}.")
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        return loss.sum() if reduction == 'sum' else loss
    if reduction == 'mean':
        return loss.sum() / (avg_factor + _AVG_EPS)
    if reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum"; use "mean".')
    return loss


def check_pair(preds_S: Tensor, preds_T: Tensor, name: str, what: str) -> None:
    """Raise a readable error when student and teacher logits cannot be compared."""
    if preds_S.dim() != 2:
        raise ValueError(f'{name} expects 2-D logits (rows x {what}), got a student tensor '
                         f'of shape {tuple(preds_S.shape)}; flatten the other dimensions first.')
    if preds_S.shape != preds_T.shape:
        raise ValueError(f'{name}: student {tuple(preds_S.shape)} and teacher '
                         f'{tuple(preds_T.shape)} logits differ in shape; both must have the '
                         f'same rows and the same number of {what} (same head layout).')


@MODELS.register_module()
class LDLoss(nn.Module):
    r"""Localization distillation on box-edge distributions (Main LD / VLR LD).

    Each row holds the ``reg_max + 1`` logits of one box edge (GFL's general distribution).

    .. math::
        \ell_i = \tau^2 \cdot \frac{1}{n+1}\sum_j
            \mathrm{KL}\big(\mathrm{softmax}(z^T_i/\tau)\,\|\,\mathrm{softmax}(z^S_i/\tau)\big)_j,
        \qquad L = w_{loss} \cdot \frac{\sum_i w_i \ell_i}{\mathrm{avg\_factor}}

    Matches HikariTJU/LD ``mmdet/models/losses/kd_loss.py`` L10-88 and mmdet 3.3
    ``KnowledgeDistillationKLDivLoss``: the per-bin KL is **averaged** over the bins
    (``.mean(1)``, 1/17 of the textbook KL for reg_max 16; LD issue #74).
    ``reduction_over_bins='sum'`` gives the textbook KL. The teacher is detached; everything
    is computed in float32 (also under AMP). ``avg_factor`` adds mmdet 3.x's float32 eps.

    Args:
        tau (float): Temperature. Defaults to 10.0 (LD configs).
        loss_weight (float): Weight of the loss. Defaults to 0.25 (LD configs).
        reduction_over_bins (str): 'mean' (official) or 'sum' (textbook KL).
        reduction (str): 'mean' (default), 'sum' or 'none' over rows, as mmdet.
    """

    axis_name = 'bins'  # what the softmax runs over, for error messages

    def __init__(self,
                 tau: float = 10.0,
                 loss_weight: float = 0.25,
                 reduction_over_bins: str = 'mean',
                 reduction: str = 'mean') -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}.')
        self.tau = tau
        self.loss_weight = loss_weight
        self.reduction_over_bins = reduction_over_bins
        self.reduction = reduction

    def forward(self,
                preds_S: Tensor,
                preds_T: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """Forward.

        Args:
            preds_S (Tensor): Student edge logits, shape (M, reg_max + 1).
            preds_T (Tensor): Teacher edge logits, same shape (detached here).
            weight (Tensor, optional): Per-row weight, shape (M,).
            avg_factor (float, optional): Divisor of the weighted sum (reduction 'mean').
        """
        check_pair(preds_S, preds_T, type(self).__name__, self.axis_name)
        if preds_S.shape[0] == 0 and self.reduction != 'none':
            return preds_S.float().sum() * 0.
        loss = distill_kl_div(preds_S, preds_T, self.tau, self.reduction_over_bins)
        return self.loss_weight * weight_reduce(loss, weight, avg_factor, self.reduction)
