"""Evaluate the loaded teacher once before distillation, and stop when it is clearly broken.

A teacher that does not detect anything (wrong checkpoint, other class order, wrong input
normalisation) silently ruins a distillation run: the student ends at or below its baseline, or
at 0 mAP, after the whole schedule. This hook measures the teacher's mAP before the first
iteration, with the config's own validation data and evaluator, and refuses to start below a
threshold. The result is cached by the teacher's weights and by what was evaluated, so resumed
and repeated runs do not evaluate again.
"""
import copy
import hashlib
import json
import logging
import os
import os.path as osp
import time
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS
from .settings import merged_settings

#: the settings of ``teacher_check = dict(...)`` in a config, with their defaults
TEACHER_CHECK_DEFAULTS = dict(
    num_images=500,  # the first images of the validation set; None: all of them
    min_map=0.05,  # stop below this (a correct teacher is far above, a broken one near 0)
    metric='bbox_mAP',  # the evaluator's key (with or without its prefix, e.g. 'coco/')
    cache_dir=None)  # None: $MMKD_CACHE_DIR/teacher_check, else ~/.cache/mmkd/teacher_check
#: the file in the run's log directory (``<work_dir>/<timestamp>/``) that records the result
RECORD_FILE = 'teacher_check.json'


class TeacherCheckError(RuntimeError):
    """The teacher's mAP is below ``teacher_check.min_map``: distilling from it is pointless."""


def default_cache_dir() -> str:
    """``$MMKD_CACHE_DIR/teacher_check``, else ``$XDG_CACHE_HOME/mmkd/teacher_check`` (or
    ``~/.cache/mmkd/teacher_check``)."""
    root = os.environ.get('MMKD_CACHE_DIR') or osp.join(
        os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache'), 'mmkd')
    return osp.join(root, 'teacher_check')


def teacher_check_settings(cfg) -> Optional[dict]:
    """The config's ``teacher_check`` merged into the defaults; None when it is off."""
    given = cfg.get('teacher_check', {})
    if given is None or given is False:
        return None
    settings = merged_settings('teacher_check', given, TEACHER_CHECK_DEFAULTS,
                               ' (or teacher_check = None to skip it)')
    num = settings['num_images']
    if num is not None and (not isinstance(num, int) or num < 1):
        raise ValueError(f'teacher_check.num_images must be a positive int or None (all '
                         f'images), got {num!r}.')
    if not isinstance(settings['min_map'], (int, float)) or settings['min_map'] < 0:
        raise ValueError(f'teacher_check.min_map must be a number >= 0, got '
                         f'{settings["min_map"]!r}.')
    return settings


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=repr)


def cache_key(weights: str, cfg, model, settings: dict) -> str:
    """What determines the result: the weights, the teacher's config and inputs, the data, the
    evaluator and the number of images (not ``min_map``, which only decides)."""
    from mmkd.models.algorithms.model_cfg import expand_model_cfg
    teacher_cfg = cfg.model.get('teacher')
    parts = dict(
        weights=weights,
        teacher=expand_model_cfg(teacher_cfg) if isinstance(teacher_cfg, dict) else None,
        inputs=model.teacher_inputs.describe() if hasattr(model, 'teacher_inputs') else None,
        dataset=cfg.val_dataloader.get('dataset'),
        evaluator=cfg.get('val_evaluator'),
        num_images=settings['num_images'],
        metric=settings['metric'])
    return hashlib.sha256(_canonical(parts).encode()).hexdigest()


def read_cache(cache_dir: str, key: str) -> Optional[dict]:
    path = osp.join(cache_dir, f'{key}.json')
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path: str, record: dict) -> None:
    """Write through a temporary file, so a reader never sees half a file."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def _find_metric(metrics: Dict[str, float], name: str) -> Optional[str]:
    for key in metrics:
        if key == name or key.endswith('/' + name):
            return key
    return None


def evaluate_teacher(runner, model, settings: dict) -> dict:
    """The teacher's metrics on the (first ``num_images`` images of the) validation set.

    The batches go through the algorithm's data preprocessor and then the teacher's own input
    normalisation, exactly as in training; the predictions go to a fresh copy of the config's
    validation evaluator. Under DDP every rank evaluates its share and the evaluator gathers
    them, then broadcasts the metrics, so every rank decides alike.
    """
    num_images = settings['num_images']
    loader_cfg = copy.deepcopy(runner.cfg.val_dataloader)
    if num_images:
        loader_cfg['dataset']['indices'] = num_images
    try:
        dataloader = runner.build_dataloader(loader_cfg, seed=runner.seed)
    except TypeError as e:
        if num_images and 'indices' in str(e):
            raise TypeError(f'teacher check: the validation dataset '
                            f'({loader_cfg["dataset"].get("type")}) cannot be cut to its first '
                            f'images ({e}); set teacher_check = dict(num_images=None) to '
                            'evaluate all of it.') from e
        raise
    dataset = dataloader.dataset
    evaluator = runner.build_evaluator(copy.deepcopy(runner.cfg.val_evaluator))
    evaluator.dataset_meta = dataset.metainfo
    # CocoMetric scores every image of its annotation file unless told which ones were seen
    img_ids = [dataset.get_data_info(i).get('img_id') for i in range(len(dataset))]
    for metric in evaluator.metrics:
        if hasattr(metric, 'img_ids') and None not in img_ids:
            metric.img_ids = img_ids

    teacher = model.teacher
    teacher.eval()
    num_detections = 0
    start = time.time()
    with torch.no_grad():
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            if hasattr(model, 'teacher_inputs'):
                inputs = model.teacher_inputs(inputs, samples)
            outputs = teacher.predict(inputs, samples)
            num_detections += sum(len(o.pred_instances) for o in outputs)
            evaluator.process(data_samples=outputs, data_batch=batch)
    metrics = evaluator.evaluate(len(dataset))
    total = torch.tensor([num_detections], dtype=torch.long)
    all_reduce(total)  # a no-op without DDP
    key = _find_metric(metrics, settings['metric'])
    if key is None and int(total) > 0:
        raise KeyError(f'teacher check: the evaluator returned no {settings["metric"]!r} '
                       f'(its metrics: {sorted(metrics)}); set teacher_check = '
                       'dict(metric=...) to one of them.')
    return dict(
        map=float(metrics[key]) if key is not None else 0.0,  # no detection at all: 0
        metric_key=key or settings['metric'],
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        num_images=len(dataset),
        num_detections=int(total),
        classes=list(dataset.metainfo.get('classes', ())),
        seconds=round(time.time() - start, 2))


def _head_classes(teacher) -> Optional[int]:
    for head in ('bbox_head', 'roi_head'):
        module = getattr(teacher, head, None)
        module = getattr(module, 'bbox_head', module)
        if hasattr(module, 'num_classes'):
            return int(module.num_classes)
    return None


def checkpoint_classes(path: Optional[str]) -> Optional[list]:
    """The class names a checkpoint's meta records (mmdet 3.x ``dataset_meta``, 2.x
    ``CLASSES``), or None."""
    if not path:
        return None
    try:
        from mmengine.runner.checkpoint import _load_checkpoint
        meta = _load_checkpoint(path, map_location='cpu').get('meta') or {}
    except Exception:  # unreadable here: the message just says less
        return None
    classes = (meta.get('dataset_meta') or {}).get('classes') or meta.get('CLASSES')
    return list(classes) if classes else None


def failure_message(record: dict, settings: dict, cfg, model) -> str:
    """The error of a failed check: the number, the three usual causes, how to skip."""
    ckpt = cfg.model.get('teacher_ckpt')
    data_classes = record.get('classes') or []
    ckpt_classes = checkpoint_classes(ckpt)
    head = _head_classes(model.teacher)
    if ckpt_classes and ckpt_classes != data_classes:
        found = (f' -- and here they differ: the checkpoint was trained on {ckpt_classes}, the '
                 f'data set has {data_classes}')
    else:
        found = ''
    inputs = model.teacher_inputs.describe() if hasattr(model, 'teacher_inputs') else 'n/a'
    return (
        f'teacher {settings["metric"]} = {record["map"]:.4f} on {record["num_images"]} '
        f'validation image(s) ({record["num_detections"]} detections), below '
        f'teacher_check.min_map = {settings["min_map"]}: this teacher does not detect the '
        'objects of this data set, and distilling from it would harm the student. Likely '
        'causes:\n'
        f'  1. wrong checkpoint: model.teacher_ckpt = {ckpt!r} is not a trained model.teacher '
        '(another architecture or data set, an untrained or partly loaded model: see the load '
        'report above);\n'
        f'  2. class order or count: the teacher head predicts {head} classes and the data set '
        f'has {len(data_classes)}; the teacher must have been trained on the same classes in '
        f'the same order{found};\n'
        f'  3. input normalisation: the teacher must see its inputs as in its training '
        f'({inputs}); set mean/std/bgr_to_rgb of model.teacher.data_preprocessor to them.\n'
        'To skip this check: teacher_check = None in the config (or --cfg-options '
        'teacher_check=None); to lower the bar: teacher_check = dict(min_map=...).')


@HOOKS.register_module()
class TeacherCheckHook(Hook):
    """Evaluate the teacher once before training; stop when its mAP is below ``min_map``.

    On by default in mmkd's distillation configs (``configs/_base_/distill/coco_1x.py``). Its
    settings are the config's top-level ``teacher_check`` dict (defaults in
    :data:`TEACHER_CHECK_DEFAULTS`); ``teacher_check = None`` turns it off.

    At ``before_train`` (after a resume, before the first iteration) it evaluates the loaded
    teacher on the first ``num_images`` images of ``val_dataloader`` with a fresh copy of
    ``val_evaluator`` (see :func:`evaluate_teacher`), logs ``teacher bbox_mAP = ...`` and raises
    :class:`TeacherCheckError` naming the likely causes when the mAP is below ``min_map``. The
    result is cached in ``cache_dir`` as ``<key>.json``, the key being the SHA-256 of the
    teacher's loaded weights, its config and input normalisation, the validation dataset and
    evaluator configs and ``num_images``; a resumed or repeated run reads it instead of
    evaluating. The result is also written to ``<work_dir>/<timestamp>/teacher_check.json``.
    Under DDP rank 0 hashes and reads the cache, and broadcasts what it found; an evaluation
    runs on every rank with the distributed evaluator, which broadcasts the metrics.
    """

    priority = 'HIGH'

    def before_train(self, runner) -> None:
        settings = teacher_check_settings(runner.cfg)
        if settings is None:
            print_log('teacher check: off (teacher_check = None)', logger='current')
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'teacher', None) is None:
            print_log('teacher check: skipped, the model has no teacher.', logger='current',
                      level=logging.WARNING)
            return
        if not runner.cfg.get('val_dataloader') or not runner.cfg.get('val_evaluator'):
            print_log('teacher check: skipped, the config has no val_dataloader/val_evaluator '
                      'to evaluate the teacher with.', logger='current', level=logging.WARNING)
            return
        cache_dir = settings['cache_dir'] or default_cache_dir()
        found = [None, None]
        if is_main_process():
            key = cache_key(weights_digest(model.teacher), runner.cfg, model, settings)
            found = [key, read_cache(cache_dir, key)]
        broadcast_object_list(found)
        key, record = found
        cached = record is not None
        if record is None:
            record = evaluate_teacher(runner, model, settings)
            record.update(key=key, teacher_ckpt=runner.cfg.model.get('teacher_ckpt'),
                          date=time.strftime('%Y-%m-%d %H:%M:%S'))
            if is_main_process():
                try:
                    write_json(osp.join(cache_dir, f'{key}.json'), record)
                except OSError as e:  # a read-only home, a full disk: the run goes on
                    print_log(f'teacher check: could not cache the result in {cache_dir} '
                              f'({e}); set teacher_check.cache_dir to a writable directory.',
                              logger='current', level=logging.WARNING)
        passed = record['map'] >= settings['min_map']
        if is_main_process():
            write_json(osp.join(runner.log_dir, RECORD_FILE),
                       dict(record, cached=cached, min_map=settings['min_map'], passed=passed))
        where = ('cached result of ' + record.get('date', '?')) if cached else (
            f'{record["seconds"]:.1f} s')
        print_log(
            f'teacher {settings["metric"]} = {record["map"]:.4f} ({record["metric_key"]} on '
            f'{record["num_images"]} validation image(s), {record["num_detections"]} detections; '
            f'{where}; cache: {osp.join(cache_dir, key + ".json")})', logger='current')
        if not passed:
            raise TeacherCheckError(failure_message(record, settings, runner.cfg, model))
