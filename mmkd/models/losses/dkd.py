"""DKD: Decoupled Knowledge Distillation.

Zhao et al., CVPR 2022, https://arxiv.org/abs/2203.08679 (official code:
megvii-research/mdistiller; detection use in ``detection/model/rcnn.py``).
"""
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .utils import check_roi_logits, float32_loss


class DKDTerms(NamedTuple):
    """Per-RoI pieces of DKD (see :func:`dkd_terms`)."""
    binary_S: Tensor  #: B x 2, [p_gt, sum_{k != gt} p_k] of the student
    binary_T: Tensor  #: B x 2, the same for the teacher
    nontarget_S: Tensor  #: B x (K + 1), the student's non-target distribution (p_gt ~ 0)
    nontarget_T: Tensor  #: B x (K + 1), the teacher's
    tckd: Tensor  #: B, KL(b_T || b_S) of each RoI
    nckd: Tensor  #: B, KL(p^_T || p^_S) of each RoI


def dkd_terms(logits_S: Tensor, logits_T: Tensor, gt_labels: Tensor, tau: float) -> DKDTerms:
    r"""DKD's binary (target / non-target) and non-target distributions of each RoI and its
    TCKD and NCKD, before the factor :math:`\tau^2 / B` and the weights (mdistiller
    ``mdistiller/distillers/DKD.py`` L8-51). ``gt_labels`` are long, in ``[0, K]``."""
    logits_S, logits_T = logits_S / tau, logits_T / tau
    gt_mask = torch.zeros_like(logits_S).scatter_(1, gt_labels[:, None], 1.)
    other_mask = 1. - gt_mask
    p_S, p_T = F.softmax(logits_S, dim=1), F.softmax(logits_T, dim=1)
    b_S = torch.cat([(p_S * gt_mask).sum(1, keepdim=True),
                     (p_S * other_mask).sum(1, keepdim=True)], dim=1)
    b_T = torch.cat([(p_T * gt_mask).sum(1, keepdim=True),
                     (p_T * other_mask).sum(1, keepdim=True)], dim=1)
    logq_S = F.log_softmax(logits_S - 1000.0 * gt_mask, dim=1)
    q_T = F.softmax(logits_T - 1000.0 * gt_mask, dim=1)
    tckd = F.kl_div(torch.log(b_S), b_T, reduction='none').sum(1)
    nckd = F.kl_div(logq_S, q_T, reduction='none').sum(1)
    return DKDTerms(b_S, b_T, logq_S.exp(), q_T, tckd, nckd)


@MODELS.register_module()
class DKDLoss(nn.Module):
    r"""Decoupled KD on RoI classification logits (K foreground classes + background).

    With :math:`p = \mathrm{softmax}(z/\tau)` and the binary split
    :math:`b = [p_{gt}, \sum_{k\ne gt} p_k]`:

    .. math::
        \mathrm{TCKD} = \frac{\tau^2}{B}\sum_i \mathrm{KL}(b^T_i\,\|\,b^S_i),\qquad
        \mathrm{NCKD} = \frac{\tau^2}{B}\sum_i \mathrm{KL}\big(\hat p^T_i\,\|\,\hat p^S_i\big),

        L = w_{loss}\,(\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD})

    where :math:`\hat p = \mathrm{softmax}(z/\tau - 1000\cdot 1_{gt})` (the non-target
    distribution) and B is the number of RoIs (sum over the batch / batch size).

    Exactly mdistiller ``mdistiller/distillers/DKD.py`` L8-51 (``dkd_loss``), which is also
    mmrazor's ``DKDLoss`` with ``reduction='batchmean'``. Deliberate differences: the teacher is
    detached (mdistiller runs it under no_grad), the loss is computed in float32 (``log`` of the
    binary probabilities underflows in fp16; see :mod:`mmkd.models.losses.utils`), and zero
    RoIs give a zero loss instead of NaN.
    The detection defaults are mdistiller's ``detection/model/config.py``: tau=1, alpha=1,
    beta=0.25; there the labels are the sampled RoIs' classes with background = K.

    Args:
        tau (float): Temperature. Defaults to 1.0.
        alpha (float): Weight of TCKD. Defaults to 1.0.
        beta (float): Weight of NCKD. Defaults to 0.25.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True

    def __init__(self,
                 tau: float = 1.0,
                 alpha: float = 1.0,
                 beta: float = 0.25,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}.')
        self.tau = tau
        self.alpha = alpha
        self.beta = beta
        self.loss_weight = loss_weight

    @float32_loss
    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_labels: Tensor) -> Tensor:
        """Forward.

        Args:
            preds_S (Tensor): Student RoI logits, shape (B, K + 1).
            preds_T (Tensor): Teacher logits on the same RoIs, shape (B, K + 1).
            gt_labels (Tensor): Class of each RoI in [0, K] (K = background), shape (B,).
        """
        gt_labels = check_roi_logits(preds_S, preds_T, gt_labels, 'DKDLoss').long()
        num_rois, num_logits = preds_S.shape
        if num_rois == 0:
            return preds_S.sum() * 0.
        if gt_labels.min() < 0 or gt_labels.max() >= num_logits:
            raise ValueError(f'DKDLoss labels must lie in [0, {num_logits - 1}] for logits with '
                             f'{num_logits} classes; got [{int(gt_labels.min())}, '
                             f'{int(gt_labels.max())}].')
        terms = dkd_terms(preds_S, preds_T.detach(), gt_labels, self.tau)
        scale = self.tau**2 / num_rois
        tckd = terms.tckd.sum() * scale
        nckd = terms.nckd.sum() * scale
        return self.loss_weight * (self.alpha * tckd + self.beta * nckd)
