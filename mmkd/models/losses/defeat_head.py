"""DeFeat RoI-head term: decoupled classification KD on foreground / background RoIs.

Guo et al., Distilling Object Detectors via Decoupled Features, CVPR 2021,
https://arxiv.org/abs/2103.14475 (official code: ggjy/DeFeat.pytorch).
"""
from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from .utils import check_roi_logits, float32_loss


@MODELS.register_module()
class DeFeatHeadLoss(nn.Module):
    r"""Decoupled KL distillation of RoI classification logits.

    For a set :math:`R` of RoIs (foreground: label < K, background: label == K, with K + 1
    logits per RoI):

    .. math::
        L_R = \frac{\tau^2}{|R|}\sum_{i\in R}\sum_c
              p^T_{ic}\big(\log p^T_{ic} - \log p^S_{ic}\big),\quad p = \mathrm{softmax}(z/\tau),
        \qquad L = w_{fg} L_{fg} + w_{bg} L_{bg}

    Matches ggjy/DeFeat.pytorch ``mmdet/apis/train.py`` ``KLDivergenceLoss`` (L88-103) with the
    ``KL-decouple`` branch of ``batch_processor_kd`` (L228-297). As officially, one temperature
    serves both sets (the configs' ``head_cls_back_T`` is never read). Defaults are the released
    VOC config: ``head_cls_T=1``, ``head_cls_w=head_cls_back_w=2``.

    Deliberate differences: the background index is ``K = logits.shape[1] - 1`` (official:
    ``labels.max()``, which turns the largest foreground class into "background" in a batch
    without background RoIs); an empty set contributes a zero that keeps the graph (official:
    a new CUDA tensor); the teacher is detached; float32 compute (see
    :mod:`mmkd.models.losses.utils`). Student and teacher logits must be on the same RoIs (the
    official default, ``batch_processor_kd`` L228-297, feeds the teacher's sampled RoIs to the
    student while taking the labels from the student's sampling).

    Args:
        tau (float): Temperature for both sets. Defaults to 1.0.
        loss_weight_fg (float): Weight of the foreground term. Defaults to 2.0.
        loss_weight_bg (float): Weight of the background term. Defaults to 2.0.
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight_fg: float = 2.0,
                 loss_weight_bg: float = 2.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}.')
        self.tau = tau
        self.loss_weight_fg = loss_weight_fg
        self.loss_weight_bg = loss_weight_bg

    @float32_loss
    def forward_parts(self, preds_S: Tensor, preds_T: Tensor,
                      gt_labels: Tensor) -> Tuple[Tensor, Tensor]:
        """Weighted foreground and background terms, each a float32 scalar."""
        gt_labels = check_roi_logits(preds_S, preds_T, gt_labels, 'DeFeatHeadLoss')
        bg = preds_S.shape[1] - 1
        kl = F.kl_div(
            F.log_softmax(preds_S / self.tau, dim=1),
            F.softmax(preds_T.detach() / self.tau, dim=1),
            reduction='none').sum(dim=1)
        zero = preds_S.sum() * 0.
        parts = []
        for mask in ((gt_labels >= 0) & (gt_labels < bg), gt_labels == bg):
            num = int(mask.sum())
            parts.append(kl[mask].sum() / num * self.tau**2 if num > 0 else zero)
        return self.loss_weight_fg * parts[0], self.loss_weight_bg * parts[1]

    @float32_loss
    def forward(self, preds_S: Tensor, preds_T: Tensor, gt_labels: Tensor) -> Tensor:
        """Forward.

        Args:
            preds_S (Tensor): Student RoI logits, shape (B, K + 1).
            preds_T (Tensor): Teacher logits on the same RoIs, shape (B, K + 1).
            gt_labels (Tensor): Class of each RoI in [0, K] (K = background), shape (B,).
        """
        loss_fg, loss_bg = self.forward_parts(preds_S, preds_T, gt_labels)
        return loss_fg + loss_bg
