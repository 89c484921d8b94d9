"""LD: Localization Distillation for Dense Object Detection.

Zheng et al., CVPR 2022, https://arxiv.org/abs/2102.12252 (official code: HikariTJU/LD).
"""
from mmkd.registry import MODELS
from .kd import KDLoss


@MODELS.register_module()
class LDLoss(KDLoss):
    r"""Localization distillation: KD on box-edge distributions (Main LD / VLR LD).

    Each row holds the ``reg_max + 1`` logits of one box edge (GFL's general distribution),
    and the row loss is :class:`KDLoss`'s with the bins in place of the classes:

    .. math::
        \ell_i = \tau^2 \cdot \frac{1}{n+1}\sum_j
            \mathrm{KL}\big(\mathrm{softmax}(z^T_i/\tau)\,\|\,\mathrm{softmax}(z^S_i/\tau)\big)_j,
        \qquad L = w_{loss} \cdot \frac{\sum_i w_i \ell_i}{\mathrm{avg\_factor}}

    Matches HikariTJU/LD ``mmdet/models/losses/kd_loss.py`` L10-88 and mmdet 3.3
    ``KnowledgeDistillationKLDivLoss``: the per-bin KL is **averaged** over the bins
    (``.mean(1)``, 1/17 of the textbook KL for reg_max 16; LD issue #74).
    ``reduction_over_bins='sum'`` gives the textbook KL. The teacher is detached; float32
    compute; ``avg_factor`` adds mmdet 3.x's float32 eps.

    Args:
        tau (float): Temperature. Defaults to 10.0 (LD configs).
        loss_weight (float): Weight of the loss. Defaults to 0.25 (LD configs).
        reduction_over_bins (str): 'mean' (official) or 'sum' (textbook KL).
        reduction (str): 'mean' (default), 'sum' or 'none' over rows, as mmdet.
    """

    axis_name = 'bins'

    def __init__(self,
                 tau: float = 10.0,
                 loss_weight: float = 0.25,
                 reduction_over_bins: str = 'mean',
                 reduction: str = 'mean') -> None:
        super().__init__(tau=tau, loss_weight=loss_weight,
                         reduction_over_classes=reduction_over_bins, reduction=reduction)
