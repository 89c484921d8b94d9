"""CrossKD on GFL heads: the student's head features run through the teacher's head.

Wang, Chen, Zheng, Li, Cheng, Hou, CrossKD: Cross-Head Knowledge Distillation for Dense
Object Detection, CVPR 2024, https://arxiv.org/abs/2306.11369 (official code:
jbwang1997/CrossKD).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from mmkd.registry import MODELS
from .ld_gfl import GFLTargets, HeadOutputs, LossCfg
from .utils import float32_loss

Levels = Sequence[Tensor]
#: what the loss runs of the teacher's GFL head
_TEACHER_HEAD_PARTS = ('cls_convs', 'reg_convs', 'gfl_cls', 'gfl_reg', 'scales')


def align_scale(feat_S: Tensor, feat_T: Tensor) -> Tensor:
    r"""The student map standardised per channel, then given the teacher's channel statistics.

    :math:`\hat S_c = (S_c - \mu(S_c)) / (\sigma(S_c) + 10^{-6})\cdot\sigma(T_c) + \mu(T_c)`,
    mean and unbiased std of channel c over batch and space (N, H, W) jointly; the teacher's
    statistics carry no gradient (its map has none). CrossKD's ``align_scale``
    (``mmdet/models/detectors/crosskd_gfl.py`` L88-100).
    """
    C = feat_S.shape[1]
    s = feat_S.transpose(0, 1).reshape(C, -1)
    t = feat_T.detach().transpose(0, 1).reshape(C, -1)
    s = (s - s.mean(dim=1, keepdim=True)) / (s.std(dim=1, keepdim=True) + 1e-6)
    s = s * t.std(dim=1, keepdim=True) + t.mean(dim=1, keepdim=True)
    return s.reshape(C, feat_S.shape[0], *feat_S.shape[2:]).transpose(0, 1)


@MODELS.register_module()
class GFLCrossKDLoss(GFLTargets):
    r"""CrossKD for a GFL student and teacher: cross-head predictions mimic the teacher's.

    With :math:`k` = ``reused_teacher_head_idx``, per FPN level, the student's head features
    after its k-th conv of each branch (:math:`h^S`, recorded with ``mmkd.LevelOutputs`` on
    ``bbox_head.cls_convs.{k-1}`` / ``reg_convs.{k-1}``; for k = 0 the FPN level) are scaled to
    the teacher's channel statistics (:func:`align_scale`, against the teacher's :math:`h^T`),
    passed through ReLU (k > 0) and the teacher's convs k.. and ``gfl_cls`` / ``gfl_reg`` (times
    the teacher's ``scales``): the cross-head predictions :math:`\tilde z, \tilde d`. With the
    teacher's own predictions :math:`z^T, d^T`, the label weights :math:`m_i` and GFL's
    ``avg_factor`` A of the student's ATSS assignment and
    :math:`w_i = \sigma(\max_c z^T_{ic})\,[m_i \ne 0]`:

    * cls KD = :math:`\sum_\ell \mathrm{QFL_{KD}}(\tilde z, z^T; m, A)`
      (:class:`KDQualityFocalLoss`, beta 1, weight 1)
    * reg KD = :math:`4\sum_\ell\sum_{i,e} w_i\,\mathrm{KL}(d^T_{ie}\,\|\,\tilde d_{ie}) / 4
      \,/\, \sum_{\ell, i} w_i` (:class:`LDLoss` with T 1 and the KL summed over the
      ``reg_max + 1`` bins, then divided by the weights summed over every level)

    Gradients reach the student through the frozen teacher head, whose weights get none. The
    head is handed over by :class:`~mmkd.models.algorithms.DetectionDistill` at build
    (``needs_teacher_head``) and kept as a plain reference, so it is not part of this loss's
    parameters or ``state_dict``.

    Matches jbwang1997/CrossKD (commit 87e156a4) ``mmdet/models/detectors/crosskd_gfl.py``:
    ``forward_crosskd_single`` L55-70, ``reuse_teacher_head`` L72-86, ``align_scale``
    L88-100, the targets of ``loss_by_feat`` L138-156 (the student head's ``get_anchors`` /
    ``get_targets``, i.e. mmdet's ATSS assignment) and ``pred_mimicking_loss_single`` L198-227
    with the sums of L177-188; the losses of ``configs/crosskd/
    crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py`` L53-60 (``kd_loss.py`` L10-59). Two quirks
    of the official code are kept: (1) the "held" features are taken before the activation
    (L59-61) but ``ConvModule.activate`` is an in-place ReLU, which overwrites them (L62), so
    they are the **post**-ReLU conv outputs; a recorder on the ConvModule gives exactly these;
    (2) the reg KD's divisor (the summed weights) is not averaged over GPUs, the cls KD's
    ``avg_factor`` is (``reduce_mean``, L155-156). Deliberate differences: float32 compute,
    the teacher's own head output is recorded instead of being recomputed (same values), the
    teacher's statistics are detached explicitly (they carry no gradient there either).

    Args:
        reused_teacher_head_idx (int): k above: how many head convs of each branch the
            student's features have been through. Defaults to 3 (official).
        loss_cls_kd (dict | nn.Module): Defaults to ``KDQualityFocalLoss(beta=1, w=1)``.
        loss_reg_kd (dict | nn.Module): Defaults to ``LDLoss(tau=1, w=4, sum over bins)``.
        **kwargs: :class:`GFLTargets`' ``num_classes`` (80), ``reg_max`` (16),
            ``anchor_generator``, ``assigner`` (ATSS topk 9), ``allowed_border`` (-1) and
            ``pos_weight`` (-1).
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True
    #: ``DetectionDistill`` hands this loss the teacher's ``bbox_head`` (``set_teacher_head``)
    needs_teacher_head = True

    def __init__(self,
                 reused_teacher_head_idx: int = 3,
                 loss_cls_kd: LossCfg = dict(
                     type='mmkd.KDQualityFocalLoss', beta=1.0, loss_weight=1.0),
                 loss_reg_kd: LossCfg = dict(
                     type='mmkd.LDLoss', tau=1.0, loss_weight=4.0,
                     reduction_over_bins='sum'),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if reused_teacher_head_idx < 0:
            raise ValueError('GFLCrossKDLoss: reused_teacher_head_idx must be >= 0, got '
                             f'{reused_teacher_head_idx}.')
        self.reused_teacher_head_idx = reused_teacher_head_idx
        self.loss_cls_kd = self._build(loss_cls_kd)
        self.loss_reg_kd = self._build(loss_reg_kd)
        object.__setattr__(self, 'teacher_head', None)

    def set_teacher_head(self, head: nn.Module) -> None:
        """Keep a reference to the frozen teacher's GFL head (not registered as a sub-module)."""
        missing = [p for p in _TEACHER_HEAD_PARTS if not hasattr(head, p)]
        if missing:
            raise ValueError(
                f'GFLCrossKDLoss runs the teacher\'s GFL head, but the teacher\'s bbox_head '
                f'({type(head).__name__}) has no {missing}; use a GFL teacher (mmdet GFLHead).')
        k = self.reused_teacher_head_idx
        if k > head.stacked_convs:
            raise ValueError(
                f'GFLCrossKDLoss: reused_teacher_head_idx={k} but the teacher head has only '
                f'{head.stacked_convs} convs per branch; use at most {head.stacked_convs}.')
        if head.num_classes != self.num_classes or head.reg_max != self.reg_max:
            raise ValueError(
                f'GFLCrossKDLoss has num_classes={self.num_classes}, reg_max={self.reg_max} but '
                f'the teacher head {head.num_classes}, {head.reg_max}; set them to the heads\'.')
        object.__setattr__(self, 'teacher_head', head)

    def _check_feats(self, feats_S: Levels, feats_T: Levels, branch: str) -> None:
        head = self.teacher_head
        if head is None:
            raise RuntimeError(
                'GFLCrossKDLoss has no teacher head: build it inside mmkd.DetectionDistill, '
                'which hands it over (needs_teacher_head), or call '
                'set_teacher_head(teacher.bbox_head).')
        num_levels = len(head.scales)
        if len(feats_S) != num_levels or len(feats_T) != num_levels:
            raise ValueError(
                f'GFLCrossKDLoss: {branch} features of {len(feats_S)} student and '
                f'{len(feats_T)} teacher levels, the teacher head has {num_levels}; record them '
                "with type='mmkd.LevelOutputs' (all levels of a shared head conv in one record).")
        k = self.reused_teacher_head_idx
        channels = head.in_channels if k == 0 else head.feat_channels
        for lvl, (s, t) in enumerate(zip(feats_S, feats_T)):
            if s.dim() != 4 or s.shape != t.shape or s.shape[1] != channels:
                where = ('the FPN levels' if k == 0 else
                         f'bbox_head.{branch}_convs.{k - 1}')
                raise ValueError(
                    f'GFLCrossKDLoss level {lvl}: {branch} features of student '
                    f'{tuple(s.shape)} and teacher {tuple(t.shape)} must both be (N, {channels}, '
                    f'H, W), the input of the teacher\'s conv {k}; with '
                    f'reused_teacher_head_idx={k} record {where} of both heads.')

    def cross_head(self, cls_feats_S: Levels, reg_feats_S: Levels, cls_feats_T: Levels,
                   reg_feats_T: Levels) -> Tuple[List[Tensor], List[Tensor]]:
        """The teacher head's predictions on the student's features, level by level.

        Returns:
            tuple: ``(cls_scores, bbox_preds)``, each a list over levels, shaped like the
            teacher head's output; differentiable with respect to the student's features.
        """
        self._check_feats(cls_feats_S, cls_feats_T, 'cls')
        self._check_feats(reg_feats_S, reg_feats_T, 'reg')
        head, k = self.teacher_head, self.reused_teacher_head_idx
        cls_scores, bbox_preds = [], []
        for lvl, scale in enumerate(head.scales):
            cls_feat = align_scale(cls_feats_S[lvl], cls_feats_T[lvl])
            reg_feat = align_scale(reg_feats_S[lvl], reg_feats_T[lvl])
            if k > 0:  # the activation of conv k-1, on the re-scaled map
                cls_feat, reg_feat = F.relu(cls_feat), F.relu(reg_feat)
            for i in range(k, head.stacked_convs):
                cls_feat = head.cls_convs[i](cls_feat)
                reg_feat = head.reg_convs[i](reg_feat)
            cls_scores.append(head.gfl_cls(cls_feat))
            bbox_preds.append(scale(head.gfl_reg(reg_feat)).float())
        return cls_scores, bbox_preds

    @float32_loss
    def forward(self,
                cls_feats_S: Levels,
                reg_feats_S: Levels,
                cls_feats_T: Levels,
                reg_feats_T: Levels,
                preds_T: HeadOutputs,
                batch_gt_instances: Sequence[InstanceData],
                batch_img_metas: Sequence[dict],
                batch_gt_instances_ignore: Optional[Sequence[InstanceData]] = None,
                return_levels: bool = False) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """CrossKD's cls KD and reg KD, summed over the levels.

        Args:
            cls_feats_S (list[Tensor]): The student's cls-branch head features per level,
                (N, C, H, W), after its ``reused_teacher_head_idx`` convs.
            reg_feats_S (list[Tensor]): The same for the reg branch.
            cls_feats_T (list[Tensor]): The teacher's, at the same place (statistics only).
            reg_feats_T (list[Tensor]): The same for the reg branch.
            preds_T (tuple): The teacher GFL head's output ``(cls_scores, bbox_preds)``.
            batch_gt_instances, batch_img_metas, batch_gt_instances_ignore, return_levels: as
                :meth:`GFLTargets.forward`, which compares the cross-head predictions with
                ``preds_T``.

        Returns:
            dict: ``cls_kd`` and ``reg_kd`` (weighted, float32).
        """
        crossed = self.cross_head(cls_feats_S, reg_feats_S, cls_feats_T, reg_feats_T)
        return super().forward(crossed, preds_T, batch_gt_instances, batch_img_metas,
                               batch_gt_instances_ignore, return_levels)

    def loss_by_levels(self, preds_S: HeadOutputs, preds_T: HeadOutputs,
                       anchors_list: List[Tensor], labels_list: List[Tensor],
                       label_weights_list: List[Tensor],
                       vlr_list: List[Tensor]) -> Dict[str, List[Tensor]]:
        """CrossKD's cls KD and reg KD per level, ``preds_S`` being the cross-head
        predictions; the reg KD of every level is divided by the weights of all levels."""
        (cls_X, reg_X), (cls_T, reg_T) = preds_S, preds_T
        avg_factor = self.avg_factor(labels_list)
        bins = self.reg_max + 1
        out: Dict[str, List[Tensor]] = dict(cls_kd=[], reg_kd=[])
        weight_sums = []
        for lvl in range(len(cls_T)):
            score_X = cls_X[lvl].permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            score_T = cls_T[lvl].detach().permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            label_weights = label_weights_list[lvl].reshape(-1)
            out['cls_kd'].append(
                self.loss_cls_kd(score_X, score_T, label_weights, avg_factor=avg_factor))
            # each anchor's edges weighted by the teacher's top class score, 0 where ignored
            weight = score_T.max(dim=1)[0].sigmoid() * (label_weights != 0)
            out['reg_kd'].append(self.loss_reg_kd(
                reg_X[lvl].permute(0, 2, 3, 1).reshape(-1, bins),
                reg_T[lvl].permute(0, 2, 3, 1).reshape(-1, bins),
                weight=weight[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0))
            weight_sums.append(weight.sum())
        total_weight = sum(weight_sums)
        out['reg_kd'] = [loss / total_weight for loss in out['reg_kd']]
        return out
