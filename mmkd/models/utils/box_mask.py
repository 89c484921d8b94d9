"""Batched ground-truth-box -> feature-map rasterisation shared by the GT-aware losses.

Every function here handles all boxes of a batch at once: the boxes of all images are
concatenated (with an image index per box), each box becomes a row range and a column range on
the feature map, the per-box masks are formed by broadcasting the two ranges against index
grids, and the per-image result is reduced with ``index_reduce_(..., 'amax')``. There is no
Python loop over boxes (or images), so the cost is a handful of kernels per call whatever the
number of boxes.

Two rules are implemented, each reproducing an official implementation:

* :func:`fgd_masks` -- FGD (yzd-v/FGD ``mmdet/distillation/losses/fgd.py`` L83-106 of the
  current master, which fixed an earlier height/width swap): boxes scaled to the feature map,
  ``floor``/``ceil`` extent, inclusive fill with ``1 / area`` (area in feature pixels of the
  inclusive extent), the maximum where boxes overlap (small boxes win); background mask =
  ``1[fg == 0] / sum(1[fg == 0])`` per image.
* :func:`defeat_gt_masks` -- DeFeat (ggjy/DeFeat.pytorch
  ``mmdet/models/dense_heads/anchor_head.py`` L168-173 level assignment, L262-297 mask): each GT
  is assigned to one level by its size, mapped by ``int(coord / stride)`` and filled on the
  half-open range; a degenerate range marks a single pixel. Binary.
"""
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    'boxes_of', 'concat_gt_boxes', 'rasterize_boxes_max', 'fgd_masks', 'map_boxes_to_levels',
    'defeat_gt_masks'
]


def boxes_of(instances) -> Tensor:
    """The ``N x 4`` (x1, y1, x2, y2) box tensor of an ``InstanceData`` (or a bare tensor).

    Accepts ``.bboxes`` being a Tensor or an mmdet ``HorizontalBoxes`` (read through
    ``.tensor``).
    """
    boxes = getattr(instances, 'bboxes', instances)
    boxes = getattr(boxes, 'tensor', boxes)
    if not isinstance(boxes, Tensor):
        raise TypeError(f'expected GT boxes as a Tensor or HorizontalBoxes, got {type(boxes)}')
    if boxes.numel() == 0:
        return boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f'expected GT boxes of shape (num_gts, 4) in x1y1x2y2 format, got '
                         f'{tuple(boxes.shape)}')
    return boxes


def concat_gt_boxes(batch_gt_instances: Sequence,
                    device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """Concatenate the boxes of all images.

    Returns:
        tuple: ``boxes`` (M x 4, float32) and ``img_inds`` (M, int64), the image of each box.
    """
    per_img = [boxes_of(inst) for inst in batch_gt_instances]
    if device is None:
        device = per_img[0].device if per_img else torch.device('cpu')
    counts = torch.tensor([b.shape[0] for b in per_img], device=device, dtype=torch.long)
    if len(per_img) == 0:
        return torch.zeros((0, 4), device=device), counts
    boxes = torch.cat([b.to(device=device, dtype=torch.float32) for b in per_img])
    img_inds = torch.repeat_interleave(torch.arange(len(per_img), device=device), counts)
    return boxes, img_inds


def rasterize_boxes_max(row_start: Tensor, row_end: Tensor, col_start: Tensor, col_end: Tensor,
                        values: Tensor, img_inds: Tensor, num_imgs: int, height: int,
                        width: int) -> Tensor:
    """Paint boxes given as half-open integer ranges onto ``num_imgs`` maps of ``height x width``.

    Pixel ``(i, y, x)`` gets the maximum of ``values[m]`` over the boxes ``m`` of image ``i`` with
    ``row_start[m] <= y < row_end[m]`` and ``col_start[m] <= x < col_end[m]``; 0 if none.
    Ranges may extend outside the map (they are cut by the comparison) or be empty. ``values``
    must be >= 0.

    Returns:
        Tensor: ``num_imgs x height x width`` float32.
    """
    device = values.device
    out = torch.zeros((num_imgs, height, width), device=device, dtype=torch.float32)
    if values.numel() == 0:
        return out
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= row_start[:, None]) & (rows < row_end[:, None])  # M x H
    in_cols = (cols >= col_start[:, None]) & (cols < col_end[:, None])  # M x W
    # value of each box on its rows, then outer product with its columns: M x H x W
    per_box = (in_rows.to(torch.float32) * values.to(torch.float32)[:, None])[:, :, None] \
        * in_cols.to(torch.float32)[:, None, :]
    with warnings.catch_warnings():
        # index_reduce_ is flagged beta since torch 1.12; its 'amax' semantics are stable
        warnings.filterwarnings('ignore', message='index_reduce', category=UserWarning)
        out.index_reduce_(0, img_inds, per_box, 'amax', include_self=True)
    return out


def _shape_hw(meta: dict, key: str) -> Tuple[int, int]:
    if key not in meta:
        if key == 'batch_input_shape' and 'pad_shape' in meta:
            key = 'pad_shape'
        else:
            raise KeyError(f"img meta lacks '{key}' (keys: {sorted(meta)}); mmdet's "
                           'DetDataPreprocessor sets it on every data sample')
    return int(meta[key][0]), int(meta[key][1])


@torch.no_grad()
def fgd_masks(batch_gt_instances: Sequence,
              batch_img_metas: Sequence[dict],
              feat_hw: Tuple[int, int],
              box_scale: str = 'padded',
              device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """FGD's foreground and background masks for one feature level.

    Args:
        batch_gt_instances (Sequence[InstanceData]): GT of each image, ``.bboxes`` in input
            pixels (x1, y1, x2, y2).
        batch_img_metas (Sequence[dict]): metas with ``batch_input_shape`` and ``img_shape``.
        feat_hw (tuple): (H, W) of the feature map.
        box_scale (str): ``'padded'`` scales boxes by the padded batch shape
            (``batch_input_shape``), which is what the feature map covers; ``'img_shape'``
            scales by the un-padded image shape as the official code does (the two agree when
            an image is not padded).
        device: device of the returned masks.

    Returns:
        tuple: ``mask_fg`` and ``mask_bg``, both ``N x H x W`` float32. ``mask_fg`` holds
        ``1/area`` of the smallest covering box, ``mask_bg`` is ``1/#bg`` on background
        pixels of each image (all zero if the image has none).
    """
    if box_scale not in ('padded', 'img_shape'):
        raise ValueError(f"box_scale must be 'padded' or 'img_shape', got {box_scale!r}")
    if len(batch_gt_instances) != len(batch_img_metas):
        raise ValueError(f'got {len(batch_gt_instances)} gt instances and '
                         f'{len(batch_img_metas)} img metas')
    height, width = int(feat_hw[0]), int(feat_hw[1])
    num_imgs = len(batch_img_metas)
    boxes, img_inds = concat_gt_boxes(batch_gt_instances, device)
    device = boxes.device
    key = 'batch_input_shape' if box_scale == 'padded' else 'img_shape'
    shapes = torch.tensor([_shape_hw(m, key) for m in batch_img_metas],
                          dtype=torch.float32, device=device).reshape(num_imgs, 2)
    box_hw = shapes[img_inds]  # M x 2 (h, w)
    # same operation order as the official code: coord / img_size * feat_size (float32)
    wmin = torch.floor(boxes[:, 0] / box_hw[:, 1] * width).long()
    wmax = torch.ceil(boxes[:, 2] / box_hw[:, 1] * width).long()
    hmin = torch.floor(boxes[:, 1] / box_hw[:, 0] * height).long()
    hmax = torch.ceil(boxes[:, 3] / box_hw[:, 0] * height).long()
    # area of the inclusive extent, before any cut at the map border (as official)
    area = 1.0 / (hmax + 1 - hmin).float() / (wmax + 1 - wmin).float()
    # inclusive [min, max] -> half-open [min, max + 1); a negative start is cut at 0 (the
    # official slice would count it from the end of the map)
    mask_fg = rasterize_boxes_max(hmin.clamp(min=0), hmax + 1, wmin.clamp(min=0), wmax + 1, area,
                                  img_inds, num_imgs, height, width)
    mask_bg = (mask_fg == 0).to(torch.float32)
    num_bg = mask_bg.sum(dim=(1, 2), keepdim=True)
    mask_bg = mask_bg / num_bg.clamp(min=1.0)
    return mask_fg, mask_bg


def map_boxes_to_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.) -> Tensor:
    """DeFeat's (= mmdet 2.0 RoI extractor's) level of each box.

    ``lvl = floor(log2(sqrt((w + 1) * (h + 1)) / finest_scale + 1e-6))`` clamped to
    ``[0, num_levels - 1]`` (``anchor_head.py`` L168-173).
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
    """DeFeat's binary GT masks, one ``N x H_l x W_l`` float32 tensor per level.

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
