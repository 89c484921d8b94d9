"""The detection distillation algorithm: one frozen teacher, one mmdet student."""
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmrazor.models.algorithms import SingleTeacherDistill
from mmrazor.models.utils import add_prefix
from torch import nn

from mmkd.registry import MODELS
from ..recorders import ROI_SOURCES, BatchDataRecorder, is_module_recorder
from .model_cfg import expand_model_cfg
from .startup_checks import run_startup_checks
from .teacher_checkpoint import load_teacher_checkpoint
from .teacher_inputs import TeacherInputs

TEACHER_STAGES = ('auto', 'neck', 'head', 'loss')
#: ``inherit_from_teacher`` value for the official FGD/MGD inheriting strategy
INHERIT_NON_BACKBONE = 'non_backbone'


@MODELS.register_module()
class DetectionDistill(SingleTeacherDistill):
    """Distil a frozen teacher detector into an mmdet student.

    Built on mmrazor's ``SingleTeacherDistill`` (same ``distiller`` config) with what detection
    needs on top:

    - the teacher is loaded from ``teacher_ckpt`` with a clear error when the file is missing,
      unreadable or does not fit the teacher (see :func:`load_teacher_checkpoint`);
    - the teacher gets its own input normalisation (mean, std, channel order, pad value) when
      its ``data_preprocessor`` differs from the student's, e.g. a caffe-style BGR teacher
      (see :class:`TeacherInputs`);
    - the teacher is frozen, always in eval mode (BN, dropout, drop-path), runs under
      ``no_grad`` and only as deep as the losses need (``teacher_stage``);
    - the teacher is kept out of the module tree by default: it is not in ``state_dict()``
      (training checkpoints hold student + connectors + optimizer; the teacher is reloaded from
      ``teacher_ckpt``), not in ``parameters()`` and not seen by DDP;
    - a loss that runs part of the teacher's head (class flag ``needs_teacher_head``, e.g.
      CrossKD) is handed the frozen ``teacher.bbox_head`` at build, as a reference that stays
      out of the distiller's parameters and state_dict;
    - ``mmkd.BatchData`` recorders receive ``batch_gt_instances``, ``batch_img_metas`` and, for
      two-stage students, the student's sampled RoIs (``rois``, ``roi_labels``) and the RoI-head
      class logits of student and teacher on those same RoIs, each pooled from its own features.

    Args:
        architecture (dict): the student; ``dict(cfg_path=..., **overrides)`` is accepted.
        teacher (dict): the teacher, same forms.
        teacher_ckpt (str, optional): file or URL of the teacher's weights. Without it the
            teacher keeps random weights (only sensible in tests) and a warning says so.
        teacher_ckpt_allow_missing (Sequence[str]): teacher weights that may be missing from
            ``teacher_ckpt`` or have another shape there, and keep their initial values:
            module or weight names (``'bbox_head.gfl_cls'`` covers its weight and bias) or glob
            patterns (``'roi_head.bbox_head.fc_*'``). Any other missing or mis-shaped weight is
            refused at build, listed by module (a checkpoint of another depth or width
            otherwise loads in part and leaves the rest random). Defaults to none.
        teacher_stage (str): how far the teacher runs: ``'neck'`` (``extract_feat``),
            ``'head'`` (``_forward``: backbone, neck and head outputs), ``'loss'`` (its full
            loss, e.g. to record its assigner) or ``'auto'`` (``'neck'`` when every teacher
            recorder is under ``backbone``/``neck``, else ``'head'``).
        teacher_in_checkpoint (bool): keep the teacher as a sub-module so that it is written
            into checkpoints (mmrazor's behaviour). Defaults to False.
        inherit_from_teacher (str | Sequence[str]): the "inheriting strategy" of FGD/MGD, the
            student starting from the teacher's weights. ``'non_backbone'`` is the official
            one (yzd-v/FGD ``mmdet/distillation/distillers/detection_distiller.py`` L37-47,
            ``init_student``): every student weight outside ``backbone.`` whose name and shape
            match the teacher's is copied and the others are skipped (non-strict); for a
            ResNet-18 student of a ResNeXt-101 teacher that is the head, the FPN output convs and
            the lateral biases, not the lateral weights. A sequence of sub-module names (e.g.
            ``('bbox_head', )``, ``('rpn_head', 'roi_head')``) copies those, whose shapes must
            all match. Applied after ``init_weights()`` too, so mmdet's weight initialisation
            cannot undo it (FGD issue #48). Empty (default): off.
        startup_checks (bool): refuse a bad distillation set-up at build, with the fix
            (see :mod:`.startup_checks`: class counts of logit losses, a tiny dry run of the
            recorders and module-fed losses). Defaults to True.
    """

    def __init__(self,
                 distiller: dict,
                 teacher: Union[nn.Module, Dict],
                 architecture: Union[nn.Module, Dict],
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_allow_missing: Sequence[str] = (),
                 teacher_stage: str = 'auto',
                 teacher_in_checkpoint: bool = False,
                 teacher_trainable: bool = False,
                 inherit_from_teacher: Union[str, Sequence[str]] = (),
                 startup_checks: bool = True,
                 **kwargs) -> None:
        if teacher_trainable:
            raise ValueError('DetectionDistill keeps the teacher frozen; use mmrazor\'s '
                             'SingleTeacherDistill for a trainable teacher.')
        if teacher_stage not in TEACHER_STAGES:
            raise ValueError(f'teacher_stage must be one of {TEACHER_STAGES}, got '
                             f'{teacher_stage!r}.')
        super().__init__(
            distiller=distiller,
            teacher=expand_model_cfg(teacher),
            architecture=expand_model_cfg(architecture),
            teacher_ckpt=None,  # loaded below, with checks
            **kwargs)
        if teacher_ckpt:
            load_teacher_checkpoint(self.teacher, teacher_ckpt,
                                    allow_missing=teacher_ckpt_allow_missing)
        else:
            warnings.warn('DetectionDistill: no teacher_ckpt, the teacher has random weights.')
            self.teacher.init_weights()
        self.teacher._is_init = True
        self.teacher_ckpt = teacher_ckpt
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_in_checkpoint = teacher_in_checkpoint
        if not teacher_in_checkpoint:
            # a plain attribute: out of state_dict(), parameters(), DDP; moved by _apply below
            object.__setattr__(self, 'teacher', self._modules.pop('teacher'))

        self.inherit_from_teacher = self._check_inherit_from_teacher(inherit_from_teacher)
        self._inherit_teacher_weights()
        self._hand_teacher_head_to_losses()

        self.teacher_inputs = TeacherInputs(self.data_preprocessor, self.teacher.data_preprocessor)
        if self.teacher_inputs.needed:
            print_log('DetectionDistill: the teacher was trained with other input statistics; '
                      'its inputs are re-normalised from the student\'s batch ('
                      f'{self.teacher_inputs.describe()}).', logger='current')

        self.teacher_stage = self._resolve_teacher_stage(teacher_stage)
        self.needed_batch_data = self.distiller.needed_batch_data() if hasattr(
            self.distiller, 'needed_batch_data') else set()
        self.needs_rois = bool(self.needed_batch_data & set(ROI_SOURCES))
        if self.needs_rois and self.teacher_stage == 'loss':
            raise ValueError("RoI losses run the teacher's RoI head on the student's RoIs; "
                             "use teacher_stage='neck' or 'auto', not 'loss'.")
        if self.needs_rois:
            asked = sorted(self.needed_batch_data & set(ROI_SOURCES))
            for name, model in (('student', self.student), ('teacher', self.teacher)):
                if not hasattr(model, 'roi_head'):
                    raise ValueError(
                        f'The distillation losses ask for RoIs ({asked}) but the {name} '
                        f'({type(model).__name__}) is a one-stage detector without `roi_head`. '
                        'RoI-level methods (DKD, DeFeat head) need two-stage student and '
                        'teacher, e.g. Faster R-CNN.')
        if startup_checks:
            run_startup_checks(self)

    # ----------------------------------------------------------------- teacher handling
    def _resolve_teacher_stage(self, stage: str) -> str:
        if stage != 'auto':
            return stage
        for recorder in self.distiller.teacher_recorders.recorders.values():
            if isinstance(recorder, BatchDataRecorder):
                continue
            if is_module_recorder(recorder) and \
                    recorder.source.split('.')[0] in ('backbone', 'neck'):
                continue
            return 'head'
        return 'neck'

    def _hand_teacher_head_to_losses(self) -> None:
        """Give every loss that runs part of the teacher's head (class flag
        ``needs_teacher_head``, e.g. CrossKD) the frozen ``teacher.bbox_head``; the loss keeps it
        as a plain reference, out of the distiller's parameters and state_dict."""
        for name, loss in self.distiller.distill_losses.items():
            if not getattr(loss, 'needs_teacher_head', False):
                continue
            if not hasattr(self.teacher, 'bbox_head'):
                raise ValueError(
                    f'Distillation loss {name!r} ({type(loss).__name__}) runs the teacher\'s '
                    f'bbox_head, but the teacher ({type(self.teacher).__name__}) has none; use '
                    'a one-stage teacher with the head the loss names.')
            loss.set_teacher_head(self.teacher.bbox_head)

    @staticmethod
    def _check_inherit_from_teacher(value: Union[str, Sequence[str]]) -> Union[str, tuple]:
        if isinstance(value, str):
            if value != INHERIT_NON_BACKBONE:
                raise ValueError(
                    f'inherit_from_teacher={value!r}: give {INHERIT_NON_BACKBONE!r} (every '
                    'non-backbone weight whose shape matches, as FGD/MGD) or a list of student '
                    "sub-modules, e.g. ['bbox_head'].")
            return value
        return tuple(value)

    def _inherit_teacher_weights(self) -> List[str]:
        """Copy the teacher's weights named by ``inherit_from_teacher`` into the student.

        Returns the copied keys; with ``'non_backbone'``, logs how many were copied and which
        were skipped for their shape.
        """
        if not self.inherit_from_teacher:
            return []
        teacher_state = self.teacher.state_dict()
        student_state = self.student.state_dict()
        copied = {}
        if self.inherit_from_teacher == INHERIT_NON_BACKBONE:
            skipped = []
            for k, v in teacher_state.items():
                if k.startswith('backbone.') or k not in student_state:
                    continue
                if v.shape != student_state[k].shape:
                    skipped.append(f'{k} {tuple(student_state[k].shape)} vs {tuple(v.shape)}')
                else:
                    copied[k] = v
            print_log(f'inherit_from_teacher={INHERIT_NON_BACKBONE!r}: {len(copied)} teacher '
                      f'weights copied into the student; skipped for shape (student vs teacher): '
                      f'{skipped or "none"}', logger='current')
        else:
            for prefix in self.inherit_from_teacher:
                keys = [k for k in student_state if k.startswith(prefix + '.')]
                if not keys:
                    raise KeyError(
                        f'inherit_from_teacher: the student has no sub-module {prefix!r}.')
                for k in keys:
                    if k not in teacher_state or teacher_state[k].shape != student_state[k].shape:
                        have = tuple(teacher_state[k].shape) if k in teacher_state else 'missing'
                        raise ValueError(
                            f'inherit_from_teacher={self.inherit_from_teacher}: {k} is '
                            f'{tuple(student_state[k].shape)} in the student but {have} in the '
                            'teacher; inherit only sub-modules that have the same shape in both, '
                            f'or use {INHERIT_NON_BACKBONE!r}, which skips such weights.')
                    copied[k] = teacher_state[k]
        self.student.load_state_dict(copied, strict=False)
        return sorted(copied)

    def init_weights(self) -> None:
        super().init_weights()
        self._inherit_teacher_weights()  # after mmdet's init, which would overwrite it

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if not self.teacher_in_checkpoint:
            self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> 'DetectionDistill':
        super().train(mode)
        self.teacher.eval()  # the whole teacher, not only its BN (dropout, drop-path too)
        return self

    def _run_teacher(self, batch_inputs: torch.Tensor,
                     data_samples: Optional[List[BaseDataElement]]) -> Optional[tuple]:
        """Run the frozen teacher as deep as needed; return its neck features."""
        if self.teacher_stage == 'loss':
            self.teacher.loss(batch_inputs, data_samples)
            return None
        feats = self.teacher.extract_feat(batch_inputs)
        if self.teacher_stage == 'head':
            if hasattr(self.teacher, 'roi_head'):
                rpn = self.teacher.rpn_head.predict(feats, data_samples, rescale=False)
                # called as modules (not `.forward`) so that recorders hooked on them fire
                self.teacher.roi_head(feats, rpn, data_samples)
            else:
                self.teacher.bbox_head(feats)
        return feats

    # ----------------------------------------------------------------- student RoIs
    @contextmanager
    def _capture_student_rois(self) -> Iterator[dict]:
        """Capture the student's sampled RoIs and its RoI-head output on them."""
        captured: dict = {}
        if not self.needs_rois:
            yield captured
            return
        roi_head = self.student.roi_head
        bbox_loss, bbox_forward = roi_head.bbox_loss, roi_head._bbox_forward

        def recording_bbox_forward(x, rois):
            results = bbox_forward(x, rois)
            captured['rois'], captured['cls_score'] = rois, results['cls_score']
            return results

        def recording_bbox_loss(x, sampling_results):
            captured['sampling_results'] = sampling_results
            roi_head._bbox_forward = recording_bbox_forward
            try:
                return bbox_loss(x, sampling_results)
            finally:
                del roi_head._bbox_forward

        roi_head.bbox_loss = recording_bbox_loss
        try:
            yield captured
        finally:
            del roi_head.bbox_loss

    def _roi_data(self, captured: dict, teacher_feats: Optional[tuple]) -> dict:
        if 'rois' not in captured:
            raise RuntimeError('The student did not sample RoIs in this step, so RoI losses '
                               'have no input; is the student a two-stage detector in loss mode?')
        num_classes = self.student.roi_head.bbox_head.num_classes
        labels = torch.cat([
            torch.cat([res.pos_gt_labels,
                       res.pos_gt_labels.new_full((len(res.neg_priors), ), num_classes)])
            for res in captured['sampling_results']
        ])
        rois = captured['rois']
        with torch.no_grad():
            teacher_cls = self.teacher.roi_head._bbox_forward(teacher_feats, rois)['cls_score']
        return dict(rois=rois, roi_labels=labels, student_roi_cls_scores=captured['cls_score'],
                    teacher_roi_cls_scores=teacher_cls)

    # ----------------------------------------------------------------- the step
    def _push_batch_data(self, from_student: bool, data: dict) -> None:
        if not self.needed_batch_data:  # also covers mmrazor's plain ConfigurableDistiller
            return
        for recorder in self.distiller.batch_data_recorders(from_student):
            if recorder.source in data:
                recorder.record(data[recorder.source])

    def loss(self, batch_inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, torch.Tensor]:
        """Teacher (no grad) -> student with its task losses -> distillation losses."""
        batch = dict(
            batch_data_samples=data_samples,
            batch_gt_instances=[s.gt_instances for s in data_samples or []],
            batch_img_metas=[s.metainfo for s in data_samples or []])
        losses: Dict[str, torch.Tensor] = dict()

        # stopped (mmrazor's StopDistillHook, or mmkd.DistillWeightsHook's schedule): the
        # teacher is not run, unless a delivery feeds the student with its outputs
        run_teacher = not self.distillation_stopped or bool(self.distiller.deliveries.deliveries)
        teacher_feats = None
        self.distiller.set_deliveries_override(False)
        if run_teacher:
            with self.distiller.teacher_recorders, self.distiller.deliveries, torch.no_grad():
                teacher_feats = self._run_teacher(
                    self.teacher_inputs(batch_inputs, data_samples), data_samples)

        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries, \
                self._capture_student_rois() as captured:
            if self.calculate_student_loss:
                student_losses = self.student(batch_inputs, data_samples, mode='loss')
                losses.update(add_prefix(student_losses, 'student'))
            else:
                self.student(batch_inputs, data_samples, mode='loss')
        if self.distillation_stopped:
            # the terms of the last distilled step stay in the log, as 0 (not as stale values)
            zero = batch_inputs.new_zeros(())
            losses.update({f'distill.{term}': zero
                           for term in getattr(self.distiller, 'term_losses', {})})
            return losses
        if self.needs_rois:
            batch.update(self._roi_data(captured, teacher_feats))
        # recorders reset their buffers on entering their context, so this data stays put
        self._push_batch_data(True, batch)
        self._push_batch_data(False, batch)
        losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return losses
