"""Toy Shapes: a small COCO-format detection set made on the spot, deterministically.

Coloured circles, squares, triangles and crosses of varied size on textured backgrounds: easy
enough that a detector trained from scratch on a CPU learns it in minutes, hard enough that a
bigger teacher beats a smaller student. Used by the README's main job, the toy configs and the
tests, so nothing has to be downloaded.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Tuple

import cv2
import numpy as np
from mmdet.datasets import CocoDataset

from mmkd.registry import DATASETS
from .checked_coco import CheckedBoxesMixin

TOY_CLASSES = ('circle', 'square', 'triangle', 'cross')
#: bump when the generator changes, so stale copies on disk are rewritten
TOY_VERSION = 1


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour noise plus faint stripes."""
    low = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = 12 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    img += stripes[..., None] + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(img, 0, 255)


def _draw(img: np.ndarray, label: int, box: Tuple[int, int, int, int], color) -> None:
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    if label == 0:
        cv2.ellipse(img, (int(cx), int(cy)), (w // 2, h // 2), 0, 0, 360, color, -1)
    elif label == 1:
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    elif label == 2:
        pts = np.array([[cx, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]], np.int32)
        cv2.fillPoly(img, [pts], color)
    else:
        t = max(2, min(w, h) // 4)
        cv2.rectangle(img, (x1, int(cy - t / 2)), (x2 - 1, int(cy + t / 2)), color, -1)
        cv2.rectangle(img, (int(cx - t / 2), y1), (int(cx + t / 2), y2 - 1), color, -1)


def _image(rng: np.random.Generator, size: int, max_objects: int):
    img = _background(rng, size)
    boxes: List[Tuple[int, int, int, int]] = []
    labels: List[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            w = int(rng.integers(size // 8, size // 2))
            h = int(np.clip(w * rng.uniform(0.7, 1.4), size // 8, size // 2))
            x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            box = (x1, y1, x1 + w, y1 + h)
            # keep objects mostly visible: little overlap with earlier ones
            if all(_iou(box, b) < 0.2 for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(len(TOY_CLASSES)))
        color = tuple(float(c) for c in rng.choice([0, 255], size=3) * 0.8 + rng.uniform(0, 50, 3))
        _draw(img, label, box, color)
        boxes.append(box)
        labels.append(label)
    return img.astype(np.uint8), boxes, labels


def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _write_split(root: str, split: str, num: int, seed: int, size: int, max_objects: int) -> None:
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, boxes, labels = _image(rng, size, max_objects)
        name = f'{split}/{i:05d}.png'
        cv2.imwrite(osp.join(root, name), img)
        images.append(dict(id=i, file_name=name, width=size, height=size))
        for box, label in zip(boxes, labels):
            x1, y1, x2, y2 = box
            annotations.append(
                dict(id=len(annotations) + 1, image_id=i, category_id=label + 1,
                     bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(TOY_CLASSES)])
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)


def make_toy_shapes(root: str = 'data/toy_shapes', num_train: int = 400, num_val: int = 100,
                    size: int = 128, max_objects: int = 4, seed: int = 0) -> str:
    """Write the data set under ``root`` unless an identical one is there; return ``root``.

    The same arguments always give the same files. Safe when several processes call it at
    once (each writes a temporary copy; the first to finish moves it into place).
    """
    spec: Dict = dict(version=TOY_VERSION, num_train=num_train, num_val=num_val, size=size,
                      max_objects=max_objects, seed=seed)
    stamp = osp.join(root, 'spec.json')
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == spec:
                return root
        shutil.rmtree(root, ignore_errors=True)
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.toy_shapes-', dir=parent)
    _write_split(tmp, 'train', num_train, seed, size, max_objects)
    _write_split(tmp, 'val', num_val, seed + 1, size, max_objects)
    with open(osp.join(tmp, 'spec.json'), 'w') as f:
        json.dump(spec, f)
    try:
        os.rename(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


@DATASETS.register_module()
class ToyShapesDataset(CheckedBoxesMixin, CocoDataset):
    """``CocoDataset`` over Toy Shapes; writes the files on first use.

    Ground-truth boxes are checked as in :class:`mmkd.CheckedCocoDataset` (``bad_boxes``).

    Args:
        toy_cfg (dict): arguments of :func:`make_toy_shapes` other than ``root`` (which is
            ``data_root``).
    """

    METAINFO = dict(classes=TOY_CLASSES,
                    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 160, 0)])

    def __init__(self, *args, toy_cfg: dict = dict(), **kwargs) -> None:
        data_root = kwargs.get('data_root') or 'data/toy_shapes'
        make_toy_shapes(data_root, **toy_cfg)
        super().__init__(*args, **kwargs)
