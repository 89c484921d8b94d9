"""Start-up checks of a ``DetectionDistill``: refuse a bad distillation config before training.

Called at the end of ``DetectionDistill.__init__`` (so ``tools/train.py`` fails in its first
seconds, not at the first iteration or hour 30). Each error names the problem and the fix.

- **classes**: a loss that compares class logits (a loss class with
  ``compares_class_logits = True``: KD, LD, GFL LD, DKD, DeFeat head; or any loss fed by a
  recorder on the detection heads or on the RoI logits) needs student and teacher heads with the
  same ``num_classes``; compared at build.
- **dry run**: one small forward (2 x 3 x 128 x 128, ``no_grad``, eval mode, the input drawn
  from a private generator) of teacher and student through the distiller's
  recorders, then every loss whose inputs all come from module recorders is called on what was
  recorded (connectors applied). A loss that fails is reported with the shapes it got; a
  channel mismatch (``preds_S`` and ``preds_T`` with different ``C``) is named as such, with the
  connector that fixes it (an error); any other failure is a warning, since a random input
  may be what upsets the loss. Losses fed by ``mmkd.BatchData`` (ground truth, RoIs) are not
  dry-run: they take their own channel arguments (e.g. FGD's ``student_channels`` and
  ``teacher_channels``).

The checks leave no trace: every random number generator the dry run can draw from (Python's
``random``, NumPy's, torch's CPU and CUDA generators; e.g. ``MGDConnector`` draws its mask from
torch's) is restored afterwards, so a seeded run gives the same numbers with the checks on or
off.
"""
import warnings
from typing import Any, Dict, Optional

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


def _needs_head(distiller, names: list) -> bool:
    sources = set()
    for name in names:
        for rec in distiller.loss_forward_mappings[name].values():
            side = (distiller.student_recorders
                    if rec['from_student'] else distiller.teacher_recorders)
            sources.add(side.get_recorder(rec['recorder']).source.split('.')[0])
    return bool(sources - {'backbone', 'neck'})


def _forward_for_records(model: nn.Module, x: torch.Tensor, head: bool) -> None:
    feats = model.extract_feat(x)
    if head:
        model.bbox_head(feats)


def dry_run_losses(algo: nn.Module) -> None:
    """Run the recorders and the module-fed losses once on a tiny input; explain failures."""
    distiller = algo.distiller
    if getattr(getattr(distiller, 'deliveries', None), 'deliveries', None):
        return  # function deliveries replay teacher outputs: not dry-run
    names = [n for n, m in distiller.loss_forward_mappings.items()
             if _module_records(distiller, m)]
    if not names:
        return
    head = _needs_head(distiller, names)
    if head and any(hasattr(m, 'roi_head') or not hasattr(m, 'bbox_head')
                    for m in (algo.student, algo.teacher)):
        # only one-stage heads are run here; RoI-head records need proposals
        names = [n for n in names if not _needs_head(distiller, [n])]
        head = False
        if not names:
            return
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
            for name in names:
                _dry_run_one(distiller, name)
    finally:
        algo.train(was_training)


def _dry_run_one(distiller, name: str) -> None:
    mapping = distiller.loss_forward_mappings[name]
    loss = distiller.distill_losses[name]
    kwargs = {key: distiller.get_record(**rec) for key, rec in mapping.items()}
    try:
        loss(**kwargs)
        return
    except Exception as e:  # explained below with the shapes the loss got
        error = e
    shapes = {key: _shape(v) for key, v in kwargs.items()}
    s, t = kwargs.get('preds_S'), kwargs.get('preds_T')
    if (isinstance(s, torch.Tensor) and isinstance(t, torch.Tensor) and s.dim() >= 2
            and t.dim() == s.dim() and s.shape[1] != t.shape[1]):
        s_rec = mapping['preds_S']
        raise ValueError(
            f'Distillation loss {name!r} ({type(loss).__name__}): student and teacher channels '
            f'differ and no connector maps one to the other: preds_S (student recorder '
            f'{s_rec["recorder"]!r}) has shape {tuple(s.shape)}, preds_T (teacher recorder '
            f'{mapping["preds_T"]["recorder"]!r}) has shape {tuple(t.shape)} (dry run on a '
            f'{DRY_RUN_BATCH}x3x{DRY_RUN_SIZE}x{DRY_RUN_SIZE} input). Fix: add a connector to '
            f'the distiller, '
            f'e.g. connectors=dict({name}_align=dict(type=\'mmrazor.ConvModuleConnector\', '
            f'in_channel={s.shape[1]}, out_channel={t.shape[1]}, kernel_size=1, act_cfg=None)), '
            f'and use it in loss_forward_mappings.{name}.preds_S (connector=\'{name}_align\'); '
            f'or give the student\'s recorded module {t.shape[1]} output channels.'
        ) from error
    # other failures may come from the dummy input itself: warn, do not refuse
    warnings.warn(
        f'Distillation loss {name!r} ({type(loss).__name__}) failed on the start-up dry run '
        f'({DRY_RUN_BATCH}x3x{DRY_RUN_SIZE}x{DRY_RUN_SIZE} random input) with inputs of shapes '
        f'{shapes}: {type(error).__name__}: {error}. If training fails the same way, check the '
        f'recorders/connectors in `distiller.loss_forward_mappings.{name}`.')
