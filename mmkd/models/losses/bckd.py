"""BCKD on GFL heads: binary classification KD and IoU-based localisation KD.

Yang, Zhou, Li, Qiao, Li, Yang, Wang, Li, Bridging Cross-task Protocol Inconsistency for
Distillation in Dense Object Detection, ICCV 2023, https://arxiv.org/abs/2308.14286 (official
code: TinyTigerPan/BCKD, built on LD's code).
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import distance2bbox
from torch import Tensor

from mmkd.registry import MODELS
from .ld_gfl import GFLTargets, HeadOutputs, LossCfg


@MODELS.register_module()
class GFLBCKDLoss(GFLTargets):
    r"""BCKD's distillation terms for a GFL student and teacher, over every anchor.

    Per FPN level, over the whole batch, with the label weights :math:`m_i` and the GFL
    ``avg_factor`` A of the student's ATSS assignment (A = per image max(#positives, 1),
    summed), student and teacher class logits :math:`z^S, z^T` and boxes :math:`b^S, b^T`
    decoded from their distributions (GFL's integral, in units of the stride, around the
    anchor centre):

    * cls KD = :math:`\sum_{i,c} m_i\,\mathrm{BCE}(z^S_{ic}, \sigma(z^T_{ic}))
      |\sigma(z^S_{ic}) - \sigma(z^T_{ic})| / A` (:class:`KDQualityFocalLoss`, beta 1)
    * loc KD = :math:`4 \sum_i w_i (1 - \mathrm{GIoU}(b^S_i, b^T_i)) / A`,
      :math:`w_i = m_i \max_c |\sigma(z^T_{ic}) - \sigma(z^S_{ic})|` (detached; mmdet's
      ``GIoULoss``)

    summed over the levels. As officially, a level without any positive anchor in the batch
    gets neither term (both sit under ``if len(pos_inds) > 0``), although both run over all
    anchors. The teacher is detached.

    Matches TinyTigerPan/BCKD (commit 121c9aa2) ``mmdet/models/dense_heads/ld_head.py``
    ``loss_single`` L145-176 (loc KD, ``loss_score_kd``) and L213-217 (cls KD, ``loss_kd``),
    ``novel_kd_loss`` in ``mmdet/models/losses/kd_loss.py`` L11-38, with the weights of
    ``configs/bckd/bckd_r50_gflv1_r101_fpn_coco_1x.py`` L39-46, where every other term (LD,
    VLR LD, VLR KD, VLR loc KD, feature imitation) has weight 0 and is not computed here
    (``mmkd.GFLLDLoss`` adds LD in the same config if wanted); the targets of its
    ``get_targets`` (GFL's ATSS assignment, ``num_total_samples`` of ``loss`` L353-356). Deliberate
    differences: float32 compute; GIoU through mmdet 3.3's ``GIoULoss`` (same formula and eps
    as mmdet 2.28's); the student's own GFL losses are mmdet 3.3's ``GFLHead`` (BCKD's
    ``LDHead`` adds 1e-4 to the box-loss weights, L151-152).

    Args:
        loss_cls_kd (dict | nn.Module): Defaults to ``KDQualityFocalLoss(beta=1, w=1)``.
        loss_loc_kd (dict | nn.Module): Defaults to mmdet's ``GIoULoss(loss_weight=4)``.
        **kwargs: :class:`GFLTargets`' ``num_classes`` (80), ``reg_max`` (16),
            ``anchor_generator``, ``assigner`` (ATSS topk 9), ``allowed_border`` (-1) and
            ``pos_weight`` (-1).
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True

    def __init__(self,
                 loss_cls_kd: LossCfg = dict(
                     type='mmkd.KDQualityFocalLoss', beta=1.0, loss_weight=1.0),
                 loss_loc_kd: LossCfg = dict(type='mmdet.GIoULoss', loss_weight=4.0),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.loss_cls_kd = self._build(loss_cls_kd)
        self.loss_loc_kd = self._build(loss_loc_kd)

    def decode(self, anchors: Tensor, dists: Tensor, stride: int) -> Tensor:
        """Boxes (x1y1x2y2, in units of ``stride``) from (M, 4*(reg_max+1)) distributions:
        mmdet's GFL ``Integral`` (expected bin) per edge around the anchor centre."""
        bins = self.reg_max + 1
        project = torch.linspace(0, self.reg_max, bins, dtype=dists.dtype, device=dists.device)
        distances = (F.softmax(dists.reshape(-1, bins), dim=1) @ project).reshape(-1, 4)
        centers = torch.stack([(anchors[:, 0] + anchors[:, 2]) / 2,
                               (anchors[:, 1] + anchors[:, 3]) / 2], dim=1) / stride
        return distance2bbox(centers, distances)

    def loss_by_levels(self, preds_S: HeadOutputs, preds_T: HeadOutputs,
                       anchors_list: List[Tensor], labels_list: List[Tensor],
                       label_weights_list: List[Tensor],
                       vlr_list: List[Tensor]) -> Dict[str, List[Tensor]]:
        """BCKD's cls KD and loc KD per level (:meth:`GFLTargets.forward` sums them).

        Returns:
            dict: ``cls_kd`` and ``loc_kd`` (weighted, float32); a level without positives
            adds a zero that keeps the graph.
        """
        (cls_S, reg_S), (cls_T, reg_T) = preds_S, preds_T
        avg_factor = max(self.avg_factor(labels_list), 1.0)
        bins = 4 * (self.reg_max + 1)
        out: Dict[str, List[Tensor]] = dict(cls_kd=[], loc_kd=[])
        for lvl, stride in enumerate(self.prior_generator.strides):
            score_S = cls_S[lvl].permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            score_T = cls_T[lvl].detach().permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            dist_S = reg_S[lvl].permute(0, 2, 3, 1).reshape(-1, bins)
            labels = labels_list[lvl].reshape(-1)
            if not ((labels >= 0) & (labels < self.num_classes)).any():
                out['cls_kd'].append(score_S.sum() * 0.)
                out['loc_kd'].append(dist_S.sum() * 0.)
                continue
            label_weights = label_weights_list[lvl].reshape(-1)
            out['cls_kd'].append(
                self.loss_cls_kd(score_S, score_T, label_weights, avg_factor=avg_factor))
            anchors = anchors_list[lvl].reshape(-1, 4)
            boxes_S = self.decode(anchors, dist_S, stride[0])
            boxes_T = self.decode(
                anchors, reg_T[lvl].detach().permute(0, 2, 3, 1).reshape(-1, bins), stride[0])
            gap = (score_T.sigmoid() - score_S.detach().sigmoid()).abs().max(dim=1)[0]
            out['loc_kd'].append(self.loss_loc_kd(
                boxes_S, boxes_T, weight=gap * label_weights, avg_factor=avg_factor))
        return out
