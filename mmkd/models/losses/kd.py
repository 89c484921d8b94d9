"""Class-logit KD as used by LD's "Main KD".

Hinton et al., Distilling the Knowledge in a Neural Network, https://arxiv.org/abs/1503.02531;
used in LD (Zheng et al., CVPR 2022, https://arxiv.org/abs/2102.12252) on the positive
locations of a GFL head.
"""
from mmkd.registry import MODELS
from .ld import LDLoss


@MODELS.register_module()
class KDLoss(LDLoss):
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

    axis_name = 'classes'

    def __init__(self,
                 tau: float = 2.0,
                 loss_weight: float = 10.0,
                 reduction_over_classes: str = 'mean',
                 reduction: str = 'mean') -> None:
        # the same KL as LDLoss, over class logits instead of box-edge bins
        super().__init__(tau=tau, loss_weight=loss_weight,
                         reduction_over_bins=reduction_over_classes, reduction=reduction)
        self.reduction_over_classes = reduction_over_classes
