"""LD on GFL head outputs: Main LD + Main KD + VLR LD for a whole batch.

Zheng et al., Localization Distillation for Dense Object Detection, CVPR 2022,
https://arxiv.org/abs/2102.12252 (official code: HikariTJU/LD).
"""
import copy
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import images_to_levels, unmap
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.utils import reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor

from mmkd.models.utils.vlr import vlr_region
from mmkd.registry import MODELS
from .utils import float32_loss

HeadOutputs = Tuple[Sequence[Tensor], Sequence[Tensor]]
LossCfg = Union[dict, nn.Module]

_GFL_ANCHORS = dict(
    type='AnchorGenerator',
    ratios=[1.0],
    octave_base_scale=8,
    scales_per_octave=1,
    strides=[8, 16, 32, 64, 128])


class GFLTargets(nn.Module, metaclass=ABCMeta):
    """GFL's anchors and ATSS targets for a whole batch, for losses on GFL head outputs.

    The part of a GFL head's ``loss_by_feat`` that the GFL distillation losses (LD, CrossKD,
    BCKD) share: mmdet 3.3's prior generator, ``anchor_inside_flags`` and ``ATSSAssigner`` with
    GFL's ``train_cfg`` (PseudoSampler semantics), so that labels and label weights are those of
    mmdet's ``GFLHead.get_targets`` for the student's own assignment; for LD also its valuable
    localisation region (:func:`~mmkd.models.utils.vlr_region`). Checks the two heads' outputs.
    :meth:`forward` takes the two heads' outputs, checks them, assigns the student's anchors and
    sums over the levels the terms that a subclass computes in :meth:`loss_by_levels`.

    Args:
        num_classes (int): Number of foreground classes of both heads.
        reg_max (int): Max value of GFL's integral set (bins = reg_max + 1).
        anchor_generator (dict): The GFL head's ``anchor_generator`` (one anchor per location).
        assigner (dict): The GFL ``train_cfg.assigner``.
        allowed_border (int): GFL ``train_cfg.allowed_border``.
        pos_weight (float): GFL ``train_cfg.pos_weight`` (label weight of positives; <=0 means 1).
        with_vlr (bool): Also compute LD's VLR values in :meth:`get_targets`.
        vlr_topk (int, optional): topk for alpha_pos; None = the assigner's ``topk``.
        vlr_gamma (float): alpha_vl / alpha_pos.
    """

    def __init__(self,
                 num_classes: int = 80,
                 reg_max: int = 16,
                 anchor_generator: dict = _GFL_ANCHORS,
                 assigner: dict = dict(type='ATSSAssigner', topk=9),
                 allowed_border: int = -1,
                 pos_weight: float = -1.,
                 with_vlr: bool = False,
                 vlr_topk: Optional[int] = None,
                 vlr_gamma: float = 0.25) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.prior_generator = self._build_mmdet(anchor_generator)
        if any(n != 1 for n in self.prior_generator.num_base_priors):
            raise ValueError(f'{type(self).__name__} supports one anchor per location (GFL: '
                             'ratios=[1.0], scales_per_octave=1); got '
                             f'{self.prior_generator.num_base_priors}.')
        self.assigner = self._build_mmdet(assigner)
        self.allowed_border = allowed_border
        self.pos_weight = pos_weight
        self.with_vlr = with_vlr
        self.vlr_topk = vlr_topk if vlr_topk is not None else getattr(self.assigner, 'topk', 9)
        self.vlr_gamma = vlr_gamma

    @staticmethod
    def _build_mmdet(cfg: dict):
        """Build an mmdet task util under mmdet's scope, whatever the default scope is."""
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('_scope_', 'mmdet')
        return MMDET_TASK_UTILS.build(cfg)

    @staticmethod
    def _build(cfg: LossCfg) -> nn.Module:
        return cfg if isinstance(cfg, nn.Module) else MODELS.build(copy.deepcopy(cfg))

    @torch.no_grad()
    def get_targets(self,
                    featmap_sizes: List[torch.Size],
                    batch_gt_instances: Sequence[InstanceData],
                    batch_img_metas: Sequence[dict],
                    batch_gt_instances_ignore: Optional[Sequence[InstanceData]] = None,
                    device: Union[str, torch.device] = 'cpu',
                    with_vlr: Optional[bool] = None
                    ) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """ATSS labels and VLR values, as GFLHead.get_targets + LD's get_vlr_region.

        ``with_vlr`` (default: the loss's ``with_vlr``) says whether to compute the VLR values
        (else zeros), e.g. to look at the region of a loss that trains without it.

        Returns:
            tuple: per level, each (N, num_anchors_level): anchors (N, n, 4), labels
            (background = num_classes), label_weights, vlr values.
        """
        num_imgs = len(batch_img_metas)
        if len(batch_gt_instances) != num_imgs:
            raise ValueError(f'{len(batch_gt_instances)} gt instances for {num_imgs} image '
                             'metas; pass one of each per image.')
        if with_vlr is None:
            with_vlr = self.with_vlr
        mlvl_anchors = self.prior_generator.grid_priors(featmap_sizes, device=device)
        num_level_anchors = [a.size(0) for a in mlvl_anchors]
        flat_anchors = torch.cat(mlvl_anchors)
        if batch_gt_instances_ignore is None:
            batch_gt_instances_ignore = [None] * num_imgs
        all_labels, all_weights, all_vlr = [], [], []
        for gt, meta, gt_ignore in zip(batch_gt_instances, batch_img_metas,
                                       batch_gt_instances_ignore):
            valid = torch.cat(
                self.prior_generator.valid_flags(featmap_sizes, meta['pad_shape'], device))
            inside = anchor_inside_flags(flat_anchors, valid, meta['img_shape'][:2],
                                         self.allowed_border)
            if not inside.any():
                raise ValueError('No valid anchor inside the image boundary; check img_shape/'
                                 'pad_shape in the metas or set allowed_border=-1.')
            anchors = flat_anchors[inside]
            num_inside = [int(f.sum()) for f in torch.split(inside, num_level_anchors)]
            labels = anchors.new_full((anchors.size(0), ), self.num_classes, dtype=torch.long)
            weights = anchors.new_zeros(anchors.size(0))
            result = self.assigner.assign(
                InstanceData(priors=anchors), num_inside, gt, gt_ignore)
            pos = result.gt_inds > 0
            labels[pos] = result.labels[pos]
            weights[pos] = self.pos_weight if self.pos_weight > 0 else 1.0
            weights[result.gt_inds == 0] = 1.0
            if with_vlr:
                vlr = vlr_region(anchors, num_inside, gt.bboxes, self.vlr_topk, self.vlr_gamma)
            else:
                vlr = anchors.new_zeros(anchors.size(0))
            total = flat_anchors.size(0)
            all_labels.append(unmap(labels, total, inside, fill=self.num_classes))
            all_weights.append(unmap(weights, total, inside))
            all_vlr.append(unmap(vlr, total, inside))
        anchors_list = images_to_levels([flat_anchors] * num_imgs, num_level_anchors)
        return (anchors_list, images_to_levels(all_labels, num_level_anchors),
                images_to_levels(all_weights, num_level_anchors),
                images_to_levels(all_vlr, num_level_anchors))

    def _check(self, preds_S: HeadOutputs, preds_T: HeadOutputs) -> None:
        (cls_S, reg_S), (cls_T, reg_T) = preds_S, preds_T
        nl, name = len(self.prior_generator.strides), type(self).__name__
        if not len(cls_S) == len(reg_S) == len(cls_T) == len(reg_T) == nl:
            raise ValueError(
                f'{name} expects {nl} levels of (cls_scores, bbox_preds) from each head; got '
                f'student {len(cls_S)}/{len(reg_S)} and teacher {len(cls_T)}/{len(reg_T)}.')
        bins = 4 * (self.reg_max + 1)
        for lvl in range(nl):
            if cls_S[lvl].shape != cls_T[lvl].shape or \
                    cls_S[lvl].shape[1] != self.num_classes:
                raise ValueError(
                    f'{name} level {lvl}: class scores of student {tuple(cls_S[lvl].shape)} '
                    f'and teacher {tuple(cls_T[lvl].shape)} must both be (N, num_classes='
                    f'{self.num_classes}, H, W); set num_classes and use heads of one layout.')
            if reg_S[lvl].shape != reg_T[lvl].shape or reg_S[lvl].shape[1] != bins or \
                    reg_S[lvl].shape[2:] != cls_S[lvl].shape[2:]:
                raise ValueError(
                    f'{name} level {lvl}: box distributions of student '
                    f'{tuple(reg_S[lvl].shape)} and teacher {tuple(reg_T[lvl].shape)} must both '
                    f'be (N, 4*(reg_max+1)={bins}, H, W) on the class map grid; both heads need '
                    f'reg_max={self.reg_max} and the same strides.')

    def avg_factor(self, labels_list: List[Tensor]) -> float:
        """GFL's ``avg_factor``: per image max(#positives, 1), summed over the batch and averaged
        over the GPUs (mmdet's ``SamplingResult.avg_factor`` with PseudoSampler and
        ``reduce_mean``), from the per-level labels of :meth:`get_targets`."""
        labels = torch.cat([lvl.reshape(lvl.shape[0], -1) for lvl in labels_list], dim=1)
        num_pos = ((labels >= 0) & (labels < self.num_classes)).sum(dim=1).clamp(min=1)
        return reduce_mean(num_pos.sum().float()).item()

    @float32_loss
    def forward(self,
                preds_S: HeadOutputs,
                preds_T: HeadOutputs,
                batch_gt_instances: Sequence[InstanceData],
                batch_img_metas: Sequence[dict],
                batch_gt_instances_ignore: Optional[Sequence[InstanceData]] = None,
                return_levels: bool = False) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """The terms of :meth:`loss_by_levels`, summed over the levels.

        Args:
            preds_S (tuple): the student GFL head's forward output ``(cls_scores,
                bbox_preds)``: per level (N, num_classes, H, W) logits and
                (N, 4*(reg_max+1), H, W) box-distribution logits.
            preds_T (tuple): the teacher GFL head's output, same shapes (detached here).
            batch_gt_instances (list[InstanceData]): ``bboxes`` (x1y1x2y2, input pixels),
                ``labels`` per image.
            batch_img_metas (list[dict]): with ``img_shape`` and ``pad_shape``.
            batch_gt_instances_ignore (list[InstanceData], optional): passed to the assigner.
            return_levels (bool): Return per-level lists instead of sums.

        Returns:
            dict: each term (weighted, float32) of :meth:`loss_by_levels`.
        """
        self._check(preds_S, preds_T)
        cls_scores = preds_S[0]
        targets = self.get_targets([c.shape[-2:] for c in cls_scores], batch_gt_instances,
                                   batch_img_metas, batch_gt_instances_ignore,
                                   device=cls_scores[0].device)
        out = self.loss_by_levels(preds_S, preds_T, *targets)
        if return_levels:
            return out
        return {key: sum(v[1:], v[0]) for key, v in out.items()}

    @abstractmethod
    def loss_by_levels(self, preds_S: HeadOutputs, preds_T: HeadOutputs,
                       anchors_list: List[Tensor], labels_list: List[Tensor],
                       label_weights_list: List[Tensor],
                       vlr_list: List[Tensor]) -> Dict[str, List[Tensor]]:
        """The loss's terms, each a list over the levels, from the two heads' checked outputs
        and the per-level targets of :meth:`get_targets`; each method's subclass defines it."""


@MODELS.register_module()
class GFLLDLoss(GFLTargets):
    r"""The distillation part of LD's ``LDHead.loss_single`` for a GFL student and teacher.

    Per FPN level, over the whole batch, with P = the student's ATSS positives (its own GFL
    assignment), :math:`s_i = \max_c \sigma(z^{cls,S}_{ic})` (detached) and ``kl`` the
    per-row temperature KL averaged over bins / classes (:class:`LDLoss`, :class:`KDLoss`):

    * Main LD  = :math:`0.25\sum_{i\in P}\sum_{e=1}^{4} s_i\,\mathrm{kl}_{10}(d^S_{ie},d^T_{ie})/4`
    * Main KD  = :math:`10\sum_{i\in P}\mathrm{kl}_{2}(z^{cls,S}_i, z^{cls,T}_i) / |P_\ell|`
      (softmax over the class logits although GFL is sigmoid-based, as officially)
    * VLR LD   = :math:`0.25\sum_{i\in V}\sum_e v_i\,\mathrm{kl}_{10}(d^S_{ie}, d^T_{ie}) / 16`,
      V = anchors with :math:`v_i` = :func:`~mmkd.models.utils.vlr_region` > 0

    The returned values are sums over levels (mmdet sums the per-level list). As officially,
    Main LD and VLR LD are **not** normalised by the number of positives, so they grow with
    the images per GPU (LD issues #7/#28/#29): keep LD's 2 images per GPU or lower the weight.

    Matches HikariTJU/LD ``mmdet/models/dense_heads/ld_head.py`` ``loss_single`` (L116-282:
    weights L198-199, Main LD / KD L235-244, VLR LD L254-266; ``loss_kd_neg`` is multiplied by
    0 there and omitted here), its ``get_targets`` (VLR on the inside anchors of each image,
    unmapped with 0) and the defaults of ``configs/ld/ld_r50_gflv1_r101_fpn_coco_1x.py``.
    Main LD alone equals mmdet 3.3's ``LDHead`` ``loss_ld``. The assignment reuses mmdet 3.3's
    prior generator, ``anchor_inside_flags`` and ``ATSSAssigner`` with GFL's ``train_cfg``
    (PseudoSampler semantics), so the region is exactly the student's own GFL positives.
    Deliberate differences: float32 compute (also under AMP), teacher detached, avg_factor +
    float32 eps (mmdet 3.x's ``weight_reduce_loss``), no VLR for ``gt_bboxes_ignore`` (unused
    officially with ``ignore_iof_thr=-1``). Line numbers are those of HikariTJU/LD at commit
    4287990c.

    Args:
        loss_ld (dict | nn.Module): Main LD loss. Defaults to ``LDLoss(tau=10, w=0.25)``.
        loss_kd (dict | nn.Module): Main KD loss. Defaults to ``KDLoss(tau=2, w=10)``.
        loss_ld_vlr (dict | nn.Module): VLR LD loss. Defaults to ``LDLoss(tau=10, w=0.25)``.
        with_main_kd (bool): Compute Main KD. Defaults to True.
        with_vlr (bool): Compute VLR LD. Defaults to True.
        **kwargs: :class:`GFLTargets`' ``num_classes`` (80), ``reg_max`` (16),
            ``anchor_generator``, ``assigner`` (ATSS topk 9), ``allowed_border`` (-1),
            ``pos_weight`` (-1; the Main KD row weight of positives, <=0 means 1), ``vlr_topk``
            and ``vlr_gamma`` (0.25).
    """

    #: the start-up checks refuse this loss between heads with different ``num_classes``
    compares_class_logits = True

    def __init__(self,
                 loss_ld: LossCfg = dict(type='mmkd.LDLoss', tau=10.0, loss_weight=0.25),
                 loss_kd: LossCfg = dict(type='mmkd.KDLoss', tau=2.0, loss_weight=10.0),
                 loss_ld_vlr: LossCfg = dict(type='mmkd.LDLoss', tau=10.0, loss_weight=0.25),
                 with_main_kd: bool = True,
                 with_vlr: bool = True,
                 **kwargs) -> None:
        super().__init__(with_vlr=with_vlr, **kwargs)
        self.loss_ld = self._build(loss_ld)
        self.loss_kd = self._build(loss_kd)
        self.loss_ld_vlr = self._build(loss_ld_vlr)
        self.with_main_kd = with_main_kd

    def loss_by_levels(self, preds_S: HeadOutputs, preds_T: HeadOutputs,
                       anchors_list: List[Tensor], labels_list: List[Tensor],
                       label_weights_list: List[Tensor],
                       vlr_list: List[Tensor]) -> Dict[str, List[Tensor]]:
        """Main LD, Main KD and VLR LD per level (:meth:`GFLTargets.forward` sums them).

        Returns:
            dict: ``main_ld``, ``main_kd``, ``vlr_ld`` (weighted, float32); a switched-off
            term is a zero that keeps the graph.
        """
        (cls_S, reg_S), (cls_T, reg_T) = preds_S, preds_T
        bins = self.reg_max + 1
        out: Dict[str, List[Tensor]] = dict(main_ld=[], main_kd=[], vlr_ld=[])
        for lvl in range(len(cls_S)):
            score_S = cls_S[lvl].permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            score_T = cls_T[lvl].permute(0, 2, 3, 1).reshape(-1, self.num_classes)
            dist_S = reg_S[lvl].permute(0, 2, 3, 1).reshape(-1, 4 * bins)
            dist_T = reg_T[lvl].permute(0, 2, 3, 1).reshape(-1, 4 * bins)
            labels = labels_list[lvl].reshape(-1)
            label_weights = label_weights_list[lvl].reshape(-1)
            vlr = vlr_list[lvl].reshape(-1)
            zero = dist_S.sum() * 0.

            pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().squeeze(1)
            if len(pos) > 0:
                w = score_S.detach().sigmoid().max(dim=1)[0][pos]
                main_ld = self.loss_ld(
                    dist_S[pos].reshape(-1, bins), dist_T[pos].reshape(-1, bins),
                    weight=w[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0)
                main_kd = self.loss_kd(
                    score_S[pos], score_T[pos], weight=label_weights[pos],
                    avg_factor=pos.shape[0]) if self.with_main_kd else score_S.sum() * 0.
            else:
                main_ld, main_kd = zero, score_S.sum() * 0.

            remain = (vlr > 0).nonzero().squeeze(1)
            if self.with_vlr and len(remain) > 0:
                vlr_ld = self.loss_ld_vlr(
                    dist_S[remain].reshape(-1, bins), dist_T[remain].reshape(-1, bins),
                    weight=vlr[remain][:, None].expand(-1, 4).reshape(-1), avg_factor=16.0)
            else:
                vlr_ld = zero
            out['main_ld'].append(main_ld)
            out['main_kd'].append(main_kd)
            out['vlr_ld'].append(vlr_ld)
        return out
