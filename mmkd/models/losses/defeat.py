"""DeFeat: Distilling Object Detectors via Decoupled Features -- the neck (FPN) term.

Guo et al., CVPR 2021, https://arxiv.org/abs/2103.14475. Matches ggjy/DeFeat.pytorch
``mmdet/apis/train.py`` L299-347 (``neck-adapt,neck-decouple,mask-neck-gt,pixel-wise``), with
the GT masks of ``mmdet/models/dense_heads/anchor_head.py`` L168-173 / L262-297 and the
adaptation of ``mmdet/models/detectors/two_stage_kd.py`` L50-62, L99-102.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.models.connectors.defeat_adapt import DeFeatAdapter
from mmkd.models.utils.box_mask import concat_gt_boxes, rasterize_boxes_max
from mmkd.registry import MODELS
from .utils import Feats, float32_loss, paired_levels


def map_boxes_to_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.) -> Tensor:
    """DeFeat's (= mmdet 2.0 RoI extractor's) level of each box.

    ``lvl = floor(log2(sqrt((w + 1) * (h + 1)) / finest_scale + 1e-6))`` clamped to
    ``[0, num_levels - 1]`` (ggjy/DeFeat.pytorch ``mmdet/models/dense_heads/anchor_head.py``
    L168-173).
    """
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1))
    lvls = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return lvls.clamp(min=0, max=num_levels - 1).long()


@torch.no_grad()
def defeat_gt_masks(batch_gt_instances: Sequence,
                    featmap_sizes: Sequence[Tuple[int, int]],
                    strides: Sequence[int],
                    finest_scale: float = 56.,
                    device: Optional[torch.device] = None) -> List[Tensor]:
    """DeFeat's binary GT masks, one ``N x H_l x W_l`` float32 tensor per level, all boxes at once.

    The rule of ggjy/DeFeat.pytorch ``mmdet/models/dense_heads/anchor_head.py`` L262-297.

    Each box is imitated on exactly one level (:func:`map_boxes_to_levels`). On that level
    ``lx = max(int(x1 / s), 0)``, ``rx = min(int(x2 / s), W)`` (same for y) and the half-open
    block ``[ly:ry, lx:rx]`` is set; if ``lx == rx`` or ``ly == ry`` the single pixel
    ``(ly, lx)`` is set instead. Deliberate difference: that pixel is skipped when it lies
    outside the map (the official code raises an IndexError there).
    """
    if len(featmap_sizes) != len(strides):
        raise ValueError(f'{len(featmap_sizes)} feature levels but {len(strides)} strides '
                         f'{tuple(strides)}; give one stride per level')
    num_imgs = len(batch_gt_instances)
    boxes, img_inds = concat_gt_boxes(batch_gt_instances, device)
    device = boxes.device
    lvls = map_boxes_to_levels(boxes, len(featmap_sizes), finest_scale)
    masks = []
    for level, ((height, width), stride) in enumerate(zip(featmap_sizes, strides)):
        height, width = int(height), int(width)
        sel = lvls == level
        lvl_boxes, lvl_inds = boxes[sel], img_inds[sel]
        # int() truncation toward zero, as the official code
        mapped = (lvl_boxes / stride).to(torch.long)
        lx = mapped[:, 0].clamp(min=0)
        ly = mapped[:, 1].clamp(min=0)
        rx = mapped[:, 2].clamp(max=width)
        ry = mapped[:, 3].clamp(max=height)
        degenerate = (lx == rx) | (ly == ry)
        # a degenerate box becomes the one pixel [ly, ly + 1) x [lx, lx + 1)
        rx = torch.where(degenerate, lx + 1, rx)
        ry = torch.where(degenerate, ly + 1, ry)
        ones = torch.ones(lx.shape, device=device, dtype=torch.float32)
        masks.append(
            rasterize_boxes_max(ly, ry, lx, rx, ones, lvl_inds, num_imgs, height, width))
    return masks


@MODELS.register_module()
class DeFeatLoss(nn.Module):
    r"""Decoupled foreground / background feature imitation over FPN levels.

    Each GT box is assigned to one level,
    :math:`l = \lfloor\log_2(\sqrt{(w+1)(h+1)}/56 + 10^{-6})\rfloor` clamped to the levels, and
    marks its ``int(box / stride)`` block on that level (binary mask :math:`M_l`, repeated over
    channels). With the adapted student :math:`A_l(S_l)` (3x3 conv per level):

    .. math::
        L_{fg} = w_{fg} \frac{1}{L}\sum_l \frac{\sum (A_l(S_l) - T_l)^2 M_l}
                 {\max(1, 2\sum M_l)}, \qquad
        L_{bg} = w_{bg} \frac{1}{L}\sum_l \frac{\sum (A_l(S_l) - T_l)^2 (1 - M_l)}
                 {\max(1, 2\sum (1 - M_l))}

    (sums over batch, channels and positions: a half-MSE averaged over the fg resp. bg
    elements of the whole batch).

    Default weights are those of the only released configs (Faster R-CNN on VOC:
    ``hint_neck_w=3``, ``hint_neck_back_w=12``); for COCO the author advised 4 / 16 (DeFeat
    issue #18, together with backbone and head terms).

    Deliberate differences: the adaptation is built here (``adapt=True``, one
    :class:`~mmkd.models.connectors.DeFeatAdapter`) instead of in the detector; masks are
    rasterised for all boxes at once, and the single pixel of a degenerate box is skipped
    when it falls outside the map (the official code raises IndexError), as is a box lying
    entirely left of/above the image (the official slice would wrap around); computed in
    float32 (see :mod:`mmkd.models.losses.utils`); returns ``{'fg', 'bg'}`` weighted.

    Args:
        student_channels (int): Student FPN channels. Defaults to 256.
        teacher_channels (int): Teacher FPN channels. Defaults to 256.
        loss_weight_fg (float): Weight of the foreground term. Defaults to 3.0.
        loss_weight_bg (float): Weight of the background term. Defaults to 12.0.
        strides (Sequence[int]): Stride of each level (the RPN anchor strides).
            Defaults to (4, 8, 16, 32, 64) (P2-P6 of a two-stage FPN).
        finest_scale (float): Box scale mapped to the first level. Defaults to 56.
        adapt (bool): Build the per-level 3x3 adaptation conv. Defaults to True. Without it
            the channels must match.
    """

    def __init__(self,
                 student_channels: int = 256,
                 teacher_channels: int = 256,
                 loss_weight_fg: float = 3.0,
                 loss_weight_bg: float = 12.0,
                 strides: Sequence[int] = (4, 8, 16, 32, 64),
                 finest_scale: float = 56.,
                 adapt: bool = True) -> None:
        super().__init__()
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.loss_weight_fg = loss_weight_fg
        self.loss_weight_bg = loss_weight_bg
        self.strides = tuple(strides)
        self.finest_scale = finest_scale
        if not adapt and student_channels != teacher_channels:
            raise ValueError(f'DeFeatLoss: student_channels={student_channels} != '
                             f'teacher_channels={teacher_channels} needs adapt=True')
        self.adapt: Optional[DeFeatAdapter] = DeFeatAdapter(
            student_channels, teacher_channels, len(self.strides)) if adapt else None

    @float32_loss
    def forward(self, preds_S: Feats, preds_T: Feats, batch_gt_instances: Sequence,
                batch_img_metas: Optional[Sequence[dict]] = None) -> Dict[str, Tensor]:
        """Compute the weighted fg and bg terms.

        Args:
            preds_S (Sequence[Tensor]): Student FPN levels, N x C_s x H_l x W_l, finest first.
            preds_T (Sequence[Tensor]): Teacher FPN levels, N x C_t x H_l x W_l.
            batch_gt_instances (Sequence[InstanceData]): ``.bboxes`` in input pixels.
            batch_img_metas (Sequence[dict], optional): unused (boxes map by stride), accepted
                for a uniform GT-aware loss signature.

        Returns:
            dict: ``fg`` and ``bg`` float32 scalars, already weighted.
        """
        levels_S, levels_T = paired_levels(
            preds_S, preds_T, f'DeFeatLoss(strides={self.strides})', len(self.strides),
            'record the whole neck or set strides')
        for i, (feat_S, feat_T) in enumerate(zip(levels_S, levels_T)):
            if feat_S.shape[0] != feat_T.shape[0] or feat_S.shape[2:] != feat_T.shape[2:] or \
                    feat_S.shape[1] != self.student_channels or \
                    feat_T.shape[1] != self.teacher_channels:
                raise ValueError(
                    f'DeFeatLoss level {i}: student {tuple(feat_S.shape)} and teacher '
                    f'{tuple(feat_T.shape)}; expected N x {self.student_channels} x H x W and '
                    f'N x {self.teacher_channels} x H x W with the same N, H, W '
                    '(set student_channels/teacher_channels).')
        if len(batch_gt_instances) != levels_S[0].shape[0]:
            raise ValueError(f'DeFeatLoss: batch of {levels_S[0].shape[0]} but '
                             f'{len(batch_gt_instances)} gt instances')
        feats_S = self.adapt(levels_S) if self.adapt is not None else levels_S
        masks = defeat_gt_masks(batch_gt_instances, [f.shape[2:] for f in levels_T],
                                self.strides, self.finest_scale, device=levels_T[0].device)
        loss_fg = feats_S[0].new_zeros(())
        loss_bg = feats_S[0].new_zeros(())
        for feat_S, feat_T, mask in zip(feats_S, levels_T, masks):
            channels = feat_T.shape[1]
            sq = (feat_S - feat_T.detach()).pow(2).sum(dim=1)  # N x H x W
            # element counts in float64 (exact), as the official double masks
            num_fg = mask.sum(dtype=torch.float64) * channels
            num_bg = mask.numel() * channels - num_fg
            norm_fg = (2.0 * num_fg).clamp(min=1.0).float()
            norm_bg = (2.0 * num_bg).clamp(min=1.0).float()
            loss_fg = loss_fg + (sq * mask).sum() / norm_fg
            loss_bg = loss_bg + (sq * (1.0 - mask)).sum() / norm_bg
        num_levels = len(feats_S)
        return {
            'fg': self.loss_weight_fg * loss_fg / num_levels,
            'bg': self.loss_weight_bg * loss_bg / num_levels,
        }
