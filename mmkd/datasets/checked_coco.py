"""COCO-format data sets that refuse (or skip) malformed ground-truth boxes at start-up.

mmdet's ``CocoDataset.parse_data_info`` silently drops boxes narrower or lower than one pixel, so
a box with ``x2 < x1`` (negative width) or NaN coordinates disappears without a word, and a NaN
that slips through poisons the losses hours later. The check here looks at the raw annotations
before mmdet filters them.
"""
import math
import warnings
from typing import List, Optional

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log

from mmkd.registry import DATASETS

BAD_BOX_ACTIONS = ('error', 'skip')


def box_problem(bbox) -> Optional[str]:
    """What is wrong with a COCO ``[x, y, w, h]`` box, or None."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return 'is not four numbers [x, y, w, h]'
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return 'has a coordinate that is not a number'
    if not all(math.isfinite(v) for v in values):
        return 'has NaN or infinite coordinates'
    x, y, w, h = values
    if w < 0:
        return f'has x2 < x1 (x1={x}, x2={x + w})'
    if h < 0:
        return f'has y2 < y1 (y1={y}, y2={y + h})'
    return None


class CheckedBoxesMixin:
    """Mix into a ``CocoDataset`` subclass (before it) to check every raw GT box.

    Args:
        bad_boxes (str): what to do with an image that has a box with ``x2 < x1``, ``y2 < y1``
            or NaN/Inf coordinates: ``'error'`` (default) refuses the data set with a message
            naming the file, the image and the box; ``'skip'`` leaves such images out with one
            warning naming them.
    """

    def __init__(self, *args, bad_boxes: str = 'error', **kwargs) -> None:
        if bad_boxes not in BAD_BOX_ACTIONS:
            raise ValueError(f'bad_boxes must be one of {BAD_BOX_ACTIONS}, got {bad_boxes!r}.')
        self.bad_boxes = bad_boxes
        self.skipped_bad_boxes: List[str] = []
        super().__init__(*args, **kwargs)

    def parse_data_info(self, raw_data_info: dict):
        img = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:
            problem = box_problem(ann.get('bbox'))
            if problem is None:
                continue
            where = (f"image {img.get('file_name')!r} (id {img.get('img_id', img.get('id'))}), "
                     f"annotation id {ann.get('id')}: bbox {ann.get('bbox')} (x, y, w, h) "
                     f'{problem}')
            if self.bad_boxes == 'error':
                raise ValueError(
                    f'Bad ground-truth box in {self.ann_file}: {where}. Fix: correct the '
                    "annotation, or set `bad_boxes='skip'` in the dataset config to leave such "
                    'images out with a warning.')
            self.skipped_bad_boxes.append(where)
            return None
        return super().parse_data_info(raw_data_info)

    def load_data_list(self) -> List[dict]:
        self.skipped_bad_boxes = []
        data_list = [d for d in super().load_data_list() if d is not None]
        if self.skipped_bad_boxes:
            n = len(self.skipped_bad_boxes)
            msg = (f'{self.ann_file}: skipped {n} image(s) with bad ground-truth boxes '
                   "(bad_boxes='skip'): " + '; '.join(self.skipped_bad_boxes[:10]) +
                   (f'; ... and {n - 10} more' if n > 10 else ''))
            print_log(msg, logger='current', level=30)
            warnings.warn(msg)
        return data_list


@DATASETS.register_module()
class CheckedCocoDataset(CheckedBoxesMixin, CocoDataset):
    """mmdet's ``CocoDataset`` with the GT-box check of :class:`CheckedBoxesMixin`."""
