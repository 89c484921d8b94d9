"""Start-up checks of a ``DetectionDistill``: refuse a bad distillation config before training.

Called at the end of ``DetectionDistill.__init__`` (so ``tools/train.py`` fails in its first
seconds, not at the first iteration or hour 30). Each error names the problem and the fix.

- **classes**: a loss that compares class logits (a loss class with
  ``compares_class_logits = True``: KD, LD, GFL LD, DKD, DeFeat head; or any loss fed by a
  recorder on the detection heads or on the RoI logits) needs student and teacher heads with the
  same ``num_classes``; compared at build.
- **dry run**: one small forward (2 x 3 x 128 x 128, ``no_grad``, eval mode, the input drawn
  from a private generator) of teacher and student through the distiller's recorders. Then:

  - **strides**: every loss whose ``preds_S`` and ``preds_T`` both come from module recorders
    (FPN levels, head outputs; connectors applied) must compare maps of the same spatial size,
    i.e. the same stride. Detectors of different families number their FPN levels from
    different strides (Faster R-CNN: P2-P6, strides 4-64; GFL/RetinaNet: P3-P7, strides
    8-128), so ``data_idx=0`` on both is stride 4 against stride 8; a loss that resizes (PKD)
    would silently compare different levels, others fail at the first iteration. The error
    names the loss, both levels with their strides and the teacher ``data_idx`` of the same
    stride (the shift that aligns them).
  - **losses**: every loss whose inputs all come from module recorders is called on what was
    recorded. A loss that fails is reported with the levels and shapes it got; a channel
    mismatch (``preds_S`` and ``preds_T`` with different ``C``) is named as such, with the
    connector that fixes it (an error); any other failure is a warning, since a random input
    may be what upsets the loss. Losses fed by ``mmkd.BatchData`` (ground truth, RoIs) are not
    called: they take their own channel arguments (e.g. FGD's ``student_channels`` and
    ``teacher_channels``); their module-recorded inputs are still checked for strides.

The checks leave no trace: every random number generator the dry run can draw from (Python's
``random``, NumPy's, torch's CPU and CUDA generators; e.g. ``MGDConnector`` draws its mask from
torch's) is restored afterwards, so a seeded run gives the same numbers with the checks on or
off.
"""
import warnings
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from mmkd.engine.rng_state import preserved_rng_state
from ..recorders import ROI_LOGIT_SOURCES, is_module_recorder

_HEADS = ('bbox_head', 'roi_head')
DRY_RUN_SIZE = 128
DRY_RUN_BATCH = 2


def run_startup_checks(algo: nn.Module) -> None:
    """All start-up checks of ``algo`` (a ``DetectionDistill``)."""
    check_num_classes(algo)
    dry_run_losses(algo)


# ------------------------------------------------------------------------------ classes
def _head_classes(model: nn.Module) -> Optional[tuple]:
    if hasattr(model, 'roi_head') and hasattr(model.roi_head, 'bbox_head'):
        return 'roi_head.bbox_head', model.roi_head.bbox_head.num_classes
    if hasattr(model, 'bbox_head') and hasattr(model.bbox_head, 'num_classes'):
        return 'bbox_head', model.bbox_head.num_classes
    return None


def _recorders(distiller) -> list:
    return [r for m in (distiller.student_recorders, distiller.teacher_recorders)
            for r in m.recorders.values()]


def _logit_losses(distiller) -> list:
    """Names of the losses that compare class logits."""
    by_type = [name for name, loss in distiller.distill_losses.items()
               if getattr(loss, 'compares_class_logits', False)]
    logit_recorders = {
        name for side in (distiller.student_recorders, distiller.teacher_recorders)
        for name, r in side.recorders.items()
        if r.source in ROI_LOGIT_SOURCES or str(r.source).split('.')[0] in _HEADS
    }
    by_input = [name for name, mapping in distiller.loss_forward_mappings.items()
                if any(rec.get('recorder') in logit_recorders for rec in mapping.values())]
    return sorted(set(by_type) | set(by_input))


def check_num_classes(algo: nn.Module) -> None:
    """Refuse a logit loss between heads with different ``num_classes``."""
    distiller = algo.distiller
    losses = _logit_losses(distiller)
    if not losses:
        return
    student, teacher = _head_classes(algo.student), _head_classes(algo.teacher)
    if student is None or teacher is None:
        return
    if student[1] != teacher[1]:
        raise ValueError(
            f'Teacher and student predict different numbers of classes (student '
            f'{student[0]}.num_classes={student[1]}, teacher {teacher[0]}.num_classes='
            f'{teacher[1]}), but the distillation losses {losses} compare their class logits. '
            f'Fix: give both heads the same `num_classes` (model.architecture...num_classes and '
            f'model.teacher...num_classes) and use a teacher trained on the same classes.')
    for name in losses:
        own = getattr(distiller.distill_losses[name], 'num_classes', None)
        if own is not None and own != student[1]:
            raise ValueError(
                f'Distillation loss {name!r} ({type(distiller.distill_losses[name]).__name__}) '
                f'has num_classes={own} but the student and teacher heads have {student[1]}. '
                f'Fix: set `distiller.distill_losses.{name}.num_classes={student[1]}`.')


# ------------------------------------------------------------------------------ dry run
def _shape(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        return [_shape(v) for v in x]
    return type(x).__name__


def _module_records(distiller, mapping: Dict[str, dict]) -> bool:
    """True when every input of a loss comes from a module recorder (not BatchData)."""
    for rec in mapping.values():
        side = distiller.student_recorders if rec['from_student'] else distiller.teacher_recorders
        if not is_module_recorder(side.get_recorder(rec['recorder'])):
            return False
    return True


def _paired_mapping(distiller, name: str) -> Optional[Dict[str, dict]]:
    """``preds_S`` and ``preds_T`` of a loss when both come from module recorders, else None."""
    mapping = distiller.loss_forward_mappings[name]
    pair = {k: mapping[k] for k in ('preds_S', 'preds_T') if k in mapping}
    return pair if len(pair) == 2 and _module_records(distiller, pair) else None


def _needs_head(distiller, mappings: List[Dict[str, dict]]) -> bool:
    sources = set()
    for mapping in mappings:
        for rec in mapping.values():
            side = (distiller.student_recorders
                    if rec['from_student'] else distiller.teacher_recorders)
            sources.add(side.get_recorder(rec['recorder']).source.split('.')[0])
    return bool(sources - {'backbone', 'neck'})


def _forward_for_records(model: nn.Module, x: torch.Tensor, head: bool) -> None:
    feats = model.extract_feat(x)
    if head:
        model.bbox_head(feats)


def dry_run_losses(algo: nn.Module) -> None:
    """Run the recorders once on a tiny input; check the strides of every pair of recorded
    maps and call the module-fed losses; explain failures."""
    distiller = algo.distiller
    if getattr(getattr(distiller, 'deliveries', None), 'deliveries', None):
        return  # function deliveries replay teacher outputs: not dry-run
    called = {n: m for n, m in distiller.loss_forward_mappings.items()
              if _module_records(distiller, m)}
    paired = {n: p for n in distiller.loss_forward_mappings
              for p in [_paired_mapping(distiller, n)] if p is not None}
    if any(hasattr(m, 'roi_head') or not hasattr(m, 'bbox_head')
           for m in (algo.student, algo.teacher)):
        # only one-stage heads are run here; RoI-head records need proposals
        called = {n: m for n, m in called.items() if not _needs_head(distiller, [m])}
        paired = {n: p for n, p in paired.items() if not _needs_head(distiller, [p])}
    if not called and not paired:
        return
    head = _needs_head(distiller, list(called.values()) + list(paired.values()))
    param = next(algo.student.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(DRY_RUN_BATCH, 3, DRY_RUN_SIZE, DRY_RUN_SIZE, generator=g).to(param)
    was_training = algo.training
    algo.eval()
    try:
        with torch.no_grad(), preserved_rng_state():
            with distiller.teacher_recorders:
                _forward_for_records(algo.teacher, x, head)
            with distiller.student_recorders:
                _forward_for_records(algo.student, x, head)
            for name in paired:
                check_strides(distiller, name)
            for name in called:
                _dry_run_one(distiller, name)
    finally:
        algo.train(was_training)


# ------------------------------------------------------------------------------ strides
def _maps(x: Any) -> Optional[List[torch.Tensor]]:
    """The N x C x H x W maps of a record (one map, or nested sequences of them), else None."""
    if isinstance(x, torch.Tensor):
        return [x] if x.dim() == 4 else None
    if isinstance(x, (list, tuple)) and x:
        parts = [_maps(v) for v in x]
        return None if any(p is None for p in parts) else [m for p in parts for m in p]
    return None


def _stride(feat: torch.Tensor):
    stride = DRY_RUN_SIZE / feat.shape[-2]
    return int(stride) if stride == int(stride) else stride


def _describe(distiller, rec: dict) -> str:
    """Where a loss input comes from: ``student recorder 'fpn' (`neck`[2])``."""
    side = 'student' if rec['from_student'] else 'teacher'
    recorders = distiller.student_recorders if rec['from_student'] else \
        distiller.teacher_recorders
    source = recorders.get_recorder(rec['recorder']).source
    where = f"{side} recorder {rec['recorder']!r} (`{source}`"
    where += f"[{rec['data_idx']}])" if rec.get('data_idx') is not None else ')'
    if rec.get('connector'):
        where += f" through connector {rec['connector']!r}"
    return where


def check_strides(distiller, name: str) -> None:
    """Refuse a loss whose student and teacher maps have different spatial sizes (strides)."""
    mapping = distiller.loss_forward_mappings[name]
    rec_S, rec_T = mapping['preds_S'], mapping['preds_T']
    maps_S = _maps(distiller.get_record(**rec_S))
    maps_T = _maps(distiller.get_record(**rec_T))
    if not maps_S or not maps_T or len(maps_S) != len(maps_T):
        return  # not feature maps, or a level-count mismatch the loss itself reports
    if all(s.shape[-2:] == t.shape[-2:] for s, t in zip(maps_S, maps_T)):
        return
    strides_S, strides_T = [_stride(m) for m in maps_S], [_stride(m) for m in maps_T]
    loss = type(distiller.distill_losses[name]).__name__
    size = f'{DRY_RUN_SIZE}x{DRY_RUN_SIZE}'
    if len(maps_S) == 1:
        pairing = (f'{_describe(distiller, rec_S)} has stride {strides_S[0]} '
                   f'({maps_S[0].shape[-2]}x{maps_S[0].shape[-1]} on the {size} dry-run input), '
                   f'{_describe(distiller, rec_T)} has stride {strides_T[0]} '
                   f'({maps_T[0].shape[-2]}x{maps_T[0].shape[-1]})')
    else:
        pairing = (f'{_describe(distiller, rec_S)} has levels of strides {strides_S}, '
                   f'{_describe(distiller, rec_T)} has strides {strides_T} (on the {size} '
                   'dry-run input)')
    raise ValueError(
        f'Distillation loss {name!r} ({loss}) pairs feature maps of different strides: '
        f'{pairing}. Detectors of different families number their FPN levels from different '
        'strides (Faster R-CNN P2-P6: strides 4-64; GFL, RetinaNet P3-P7: strides 8-128), so '
        f'the same data_idx is not the same level. Fix: {_stride_fix(distiller, name, strides_S)}')


def _stride_fix(distiller, name: str, strides_S: list) -> str:
    """The teacher ``data_idx`` of the student's stride, or what else to do."""
    rec_T = distiller.loss_forward_mappings[name]['preds_T']
    whole = distiller.get_record(recorder=rec_T['recorder'], from_student=False,
                                 record_idx=rec_T.get('record_idx', 0))
    levels = _maps(whole) if isinstance(whole, (list, tuple)) else None
    key = f'loss_forward_mappings.{name}.preds_T.data_idx'
    if len(strides_S) == 1 and rec_T.get('data_idx') is not None and levels and \
            len(levels) == len(whole):
        strides_T = [_stride(m) for m in levels]
        if strides_S[0] in strides_T:
            idx = strides_T.index(strides_S[0])
            shift = idx - rec_T['data_idx']
            return (f'set {key}={idx} (the teacher level of stride {strides_S[0]}); for the '
                    f'other levels too, shift every teacher data_idx by {shift:+d} (teacher '
                    f'level strides: {strides_T}), and drop the losses of student levels that '
                    'have no teacher level of the same stride.')
        return (f'the teacher records no level of stride {strides_S[0]} (its strides: '
                f'{strides_T}); drop this loss, or record a teacher module of that stride.')
    return ('record student and teacher levels of the same strides (e.g. one loss per level, '
            'with data_idx picking levels of equal stride on each side), or resize in a '
            'connector.')


def _dry_run_one(distiller, name: str) -> None:
    mapping = distiller.loss_forward_mappings[name]
    loss = distiller.distill_losses[name]
    kwargs = {key: distiller.get_record(**rec) for key, rec in mapping.items()}
    try:
        loss(**kwargs)
        return
    except Exception as e:  # explained below with the shapes the loss got
        error = e
    inputs = '; '.join(f'{key} = {_describe(distiller, mapping[key])}, shape {_shape(v)}'
                       for key, v in kwargs.items())
    s, t = kwargs.get('preds_S'), kwargs.get('preds_T')
    if (isinstance(s, torch.Tensor) and isinstance(t, torch.Tensor) and s.dim() >= 2
            and t.dim() == s.dim() and s.shape[1] != t.shape[1]):
        raise ValueError(
            f'Distillation loss {name!r} ({type(loss).__name__}): student and teacher channels '
            f'differ and no connector maps one to the other: preds_S '
            f'({_describe(distiller, mapping["preds_S"])}) has shape {tuple(s.shape)}, preds_T '
            f'({_describe(distiller, mapping["preds_T"])}) has shape {tuple(t.shape)} (dry run '
            f'on a {DRY_RUN_BATCH}x3x{DRY_RUN_SIZE}x{DRY_RUN_SIZE} input). Fix: add a connector '
            f'to the distiller, '
            f'e.g. connectors=dict({name}_align=dict(type=\'mmrazor.ConvModuleConnector\', '
            f'in_channel={s.shape[1]}, out_channel={t.shape[1]}, kernel_size=1, act_cfg=None)), '
            f'and use it in loss_forward_mappings.{name}.preds_S (connector=\'{name}_align\'); '
            f'or give the student\'s recorded module {t.shape[1]} output channels.'
        ) from error
    # other failures may come from the dummy input itself: warn, do not refuse
    warnings.warn(
        f'Distillation loss {name!r} ({type(loss).__name__}) failed on the start-up dry run '
        f'({DRY_RUN_BATCH}x3x{DRY_RUN_SIZE}x{DRY_RUN_SIZE} random input) with {inputs}: '
        f'{type(error).__name__}: {error} (a level number in this error counts the maps the '
        f'loss was given, not the FPN levels). If training fails the same way, check the '
        f'recorders/connectors in `distiller.loss_forward_mappings.{name}`.')
