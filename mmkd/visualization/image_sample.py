"""One image through a config's test pipeline, with its GT boxes from a COCO json."""
import copy
import json
import os.path as osp
import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config


class ImageSample(NamedTuple):
    """A preprocessed image and what the pictures draw it with."""
    inputs: torch.Tensor  #: 1 x 3 x H x W, the padded batch the models see
    data_sample: object  #: DetDataSample with ``gt_instances`` (maybe empty) and metas
    canvas: np.ndarray  #: H x W x 3 uint8 RGB, the resized image on the padded canvas
    gt_names: List[str]  #: class name of each GT box
    gt_missing: Optional[str]  #: why there are no GT boxes (None when the json had them)


def eval_dataset_cfg(cfg: Config):
    """The dataset config of the test (else val) dataloader, inside any dataset wrappers."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if loader is None:
        raise ValueError('the config has no test_dataloader/val_dataloader (test pipeline)')
    dataset = loader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def default_ann_file(cfg: Config) -> Optional[str]:
    """The config's validation annotation file."""
    evaluator = cfg.get('val_evaluator') or cfg.get('test_evaluator') or {}
    if isinstance(evaluator, dict) and evaluator.get('ann_file'):
        return evaluator['ann_file']
    dataset = eval_dataset_cfg(cfg)
    if dataset.get('ann_file'):
        return osp.join(dataset.get('data_root', '') or '', dataset.ann_file)
    return None


def class_names(cfg: Config) -> Tuple[str, ...]:
    """The classes of the config's test dataset (its metainfo, else the dataset class's)."""
    dataset = eval_dataset_cfg(cfg)
    meta = dataset.get('metainfo') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    from mmdet.registry import DATASETS
    cls = DATASETS.get(dataset.type)
    return tuple(getattr(cls, 'METAINFO', {}).get('classes', ()))


def find_gt(ann_file: Optional[str], image: str, classes: Sequence[str]):
    """GT of ``image`` in a COCO json: ``((instances, names, image id), None)`` or
    ``(None, reason)``; the image is matched by its path's tail, else its file name."""
    if not ann_file or not osp.isfile(ann_file):
        return None, f'annotation file {ann_file!r} not found'
    with open(ann_file) as f:
        coco = json.load(f)
    norm = osp.normpath(osp.abspath(image))
    match = [im for im in coco.get('images', [])
             if norm.endswith(osp.sep + osp.normpath(im['file_name']))]
    if not match:
        match = [im for im in coco.get('images', [])
                 if osp.basename(im['file_name']) == osp.basename(image)]
    if len(match) != 1:
        return None, (f'{osp.basename(image)} is not in {ann_file}' if not match else
                      f'{len(match)} images of {ann_file} match {osp.basename(image)}')
    img_info = match[0]
    cats = {c['id']: c['name'] for c in coco.get('categories', [])}
    sorted_ids = sorted(cats)
    instances, names = [], []
    for ann in coco.get('annotations', []):
        if ann['image_id'] != img_info['id']:
            continue
        x, y, w, h = ann['bbox']
        name = cats.get(ann['category_id'], str(ann['category_id']))
        label = classes.index(name) if name in classes else sorted_ids.index(ann['category_id'])
        instances.append(dict(bbox=[x, y, x + w, y + h], bbox_label=label,
                              ignore_flag=int(ann.get('iscrowd', 0))))
        names.append(name)
    return (instances, names, img_info['id']), None


def load_image_sample(cfg: Config, data_preprocessor, image: str,
                      ann_file: Optional[str]) -> ImageSample:
    """Run ``image`` through the config's test pipeline and ``data_preprocessor``.

    Without GT in ``ann_file`` the annotation loading is dropped from the pipeline and the
    sample gets an empty ``gt_instances`` (the GT-based pictures then say so).
    """
    from mmengine.dataset import Compose
    from mmengine.structures import InstanceData
    pipeline = copy.deepcopy(eval_dataset_cfg(cfg).pipeline)
    found, reason = find_gt(ann_file, image, class_names(cfg))
    data = dict(img_path=image, img_id=0)
    names: List[str] = []
    if found is None:
        warnings.warn(f'no GT boxes ({reason}); the GT-based pictures are skipped. Pass '
                      '--ann COCO_JSON.')
        pipeline = [t for t in pipeline
                    if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]
    else:
        data['instances'], names, data['img_id'] = found
    packed = Compose(pipeline)(data)
    batch = data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
    sample = batch['data_samples'][0]
    if 'bboxes' not in sample.gt_instances:
        sample.gt_instances = InstanceData(bboxes=torch.zeros((0, 4)),
                                           labels=torch.zeros((0, ), dtype=torch.long))
    raw = packed['inputs'].permute(1, 2, 0).numpy()
    if raw.shape[2] == 3:
        raw = raw[..., ::-1]  # LoadImageFromFile gives BGR
    pad_h, pad_w = batch['inputs'].shape[-2:]
    canvas = np.zeros((pad_h, pad_w, raw.shape[2]), dtype=np.uint8)
    canvas[:raw.shape[0], :raw.shape[1]] = raw[:pad_h, :pad_w]
    return ImageSample(batch['inputs'], sample, canvas, names, reason)
