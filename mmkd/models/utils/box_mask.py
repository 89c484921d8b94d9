"""Batched ground-truth-box -> feature-map rasterisation, shared by the GT-aware losses.

Every function here handles all boxes of a batch at once: the boxes of all images are
concatenated (with an image index per box), each box becomes a row range and a column range on
the feature map, the per-box masks are formed by broadcasting the two ranges against index
grids, and the per-image result is reduced with ``index_reduce_(..., 'amax')``. There is no
Python loop over boxes (or images), so the cost is a handful of kernels per call whatever the
number of boxes.

The method-specific rules that map boxes to ranges live in the methods' files:
``fgd_masks`` in :mod:`mmkd.models.losses.fgd`, ``defeat_gt_masks`` in
:mod:`mmkd.models.losses.defeat`.
"""
import warnings
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['boxes_of', 'concat_gt_boxes', 'meta_hw', 'rasterize_boxes_max']


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


def meta_hw(meta: dict, key: str) -> Tuple[int, int]:
    """``(height, width)`` of an image meta's ``key`` (``img_shape``, ``batch_input_shape``).

    ``batch_input_shape`` falls back to ``pad_shape`` (the same for a single padded image).
    """
    if key not in meta:
        if key == 'batch_input_shape' and 'pad_shape' in meta:
            key = 'pad_shape'
        else:
            raise KeyError(f"img meta lacks '{key}' (keys: {sorted(meta)}); mmdet's "
                           'DetDataPreprocessor sets it on every data sample')
    return int(meta[key][0]), int(meta[key][1])
