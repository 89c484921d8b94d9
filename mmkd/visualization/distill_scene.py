"""A distillation set-up and one image: the models, their features and what every picture shares.

:meth:`DistillScene.from_config` builds the ``mmkd.DetectionDistill`` model of a config
(teacher from a checkpoint, else random weights and a banner on every picture; the student
loaded strictly with :func:`~mmkd.models.algorithms.student_only.load_student_weights`, and the
connectors and loss modules of a distillation checkpoint strictly too), runs one image through
the config's test pipeline and both models' backbone and neck, and gives the method pictures
the config's own loss modules and connectors (:meth:`DistillScene.config_losses`).
"""
import copy
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from mmkd.models.algorithms.checkpoint_keys import (describe_mismatches, key_mismatches,
                                                    strip_wrapper_prefix)
from mmkd.models.algorithms.student_only import load_student_weights
from .drawing import level_name
from .image_sample import ImageSample, load_image_sample
from .picture import Banner, Picture

#: where a distillation checkpoint keeps the connectors and the loss modules' weights
DISTILLER_PREFIX = 'distiller.'
RANDOM_TEACHER = ('warning', 'TEACHER: RANDOM WEIGHTS (no checkpoint) - nothing here is learned')
INITIAL_STUDENT = ('note', 'student: initial weights (no student checkpoint)')


class Level(NamedTuple):
    """One neck level as both models produce it."""
    index: int
    name: str  #: FPN name, e.g. 'P3'
    stride: int
    hw: Tuple[int, int]  #: the teacher's feature size


class LossEntry(NamedTuple):
    """A method's loss module with what feeds it: one of the config's distiller (``name``, its
    forward mapping's level and connector) or one built with the method's defaults (``name``
    None)."""
    name: Optional[str]
    loss: nn.Module
    level: Optional[int]  #: the neck level of ``preds_S`` (``data_idx``), None: all levels
    connector: Optional[nn.Module]  #: the connector applied to ``preds_S``, if any
    on_neck: bool  #: both ``preds_S`` and ``preds_T`` come from ``neck`` recorders


def resolve_teacher_ckpt(cfg: Config, path: Optional[str]) -> Optional[str]:
    """``path`` if given (it must exist), else the config's ``teacher_ckpt``; None (random
    teacher, with a warning) when neither gives a file here."""
    if path:
        if not osp.isfile(path):
            raise FileNotFoundError(f'teacher checkpoint {path!r} does not exist')
        return path
    path = cfg.model.get('teacher_ckpt')
    if not path:
        warnings.warn('no teacher checkpoint (the config has none and none was given): the '
                      'teacher has RANDOM weights.')
        return None
    if '://' not in path and not osp.isfile(path):
        warnings.warn(f'the config\'s teacher_ckpt {path!r} does not exist here: the teacher '
                      'has RANDOM weights (pass a teacher checkpoint).')
        return None
    return path


def load_distiller_weights(distiller: nn.Module, checkpoint: Dict) -> bool:
    """Load the connectors and loss modules (``distiller.*``) of a distillation checkpoint,
    strictly; False when the checkpoint has none (a plain or exported student)."""
    state = strip_wrapper_prefix(checkpoint.get('state_dict', checkpoint))
    part = OrderedDict((k[len(DISTILLER_PREFIX):], v) for k, v in state.items()
                       if k.startswith(DISTILLER_PREFIX))
    if not part:
        return False
    mismatches = key_mismatches(distiller.state_dict(), part)
    if any(mismatches):
        raise RuntimeError('the checkpoint\'s distiller weights do not fit the config\'s '
                           f'connectors and losses:\n{describe_mismatches(*mismatches)}'
                           'Use the config the checkpoint was trained with.')
    distiller.load_state_dict(part, strict=True)
    return True


def build_distill_model(cfg: Config, teacher_ckpt: Optional[str],
                        student_ckpt: Optional[str]) -> Tuple[nn.Module, bool]:
    """The config's distillation model in eval mode; returns (model, whether the connectors
    and loss modules hold trained weights)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if 'teacher' not in cfg.model or 'distiller' not in cfg.model:
        raise ValueError('the pictures need a distillation config (model.teacher, '
                         'model.architecture, model.distiller); this one has no teacher.')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_ckpt = teacher_ckpt
    model = MODELS.build(model_cfg)
    distiller_trained = False
    if student_ckpt:
        checkpoint = load_student_weights(model.student, student_ckpt)
        distiller_trained = load_distiller_weights(model.distiller, checkpoint)
    model.eval()
    return model, distiller_trained


def level_strides(model: nn.Module, feats, input_hw) -> List[int]:
    """Strides of the neck levels: the student head's prior generator when it fits."""
    for head_name in ('bbox_head', 'rpn_head'):
        head = getattr(model.student, head_name, None)
        strides = getattr(getattr(head, 'prior_generator', None), 'strides', None)
        if strides is not None and len(strides) == len(feats):
            return [int(s[0] if isinstance(s, (tuple, list)) else s) for s in strides]
    return [max(1, int(round(input_hw[0] / f.shape[-2]))) for f in feats]


class DistillScene:
    """One image through teacher and student of a distillation model.

    Attributes: ``model``, ``cfg``, ``inputs`` (1 x 3 x H x W), ``sample`` (the DetDataSample),
    ``canvas`` (the image), ``feats_T`` / ``feats_S`` (neck levels), ``levels``,
    ``banners`` (drawn on every picture), ``distiller_trained`` (connectors from a checkpoint),
    ``teacher_ckpt`` / ``student_ckpt`` (the files loaded, None for none).
    """

    def __init__(self, model: nn.Module, cfg: Config, sample: ImageSample, image_path: str,
                 banners: List[Banner] = (), distiller_trained: bool = False) -> None:
        self.model, self.cfg = model, cfg
        self.inputs, self.sample, self.canvas = sample.inputs, sample.data_sample, sample.canvas
        self.gt_names, self.gt_missing = sample.gt_names, sample.gt_missing
        self.image_path = image_path
        self.banners = list(banners)
        self.distiller_trained = distiller_trained
        self.teacher_ckpt: Optional[str] = None
        self.student_ckpt: Optional[str] = None
        self.pad_hw = tuple(self.inputs.shape[-2:])
        with torch.no_grad():
            teacher_inputs = getattr(model, 'teacher_inputs', None)
            self.feats_T = tuple(model.teacher.extract_feat(
                teacher_inputs(self.inputs, [self.sample]) if teacher_inputs else self.inputs))
            self.feats_S = tuple(model.student.extract_feat(self.inputs))
        strides = level_strides(model, self.feats_S, self.pad_hw)
        self.levels = [Level(i, level_name(s), s, tuple(f.shape[-2:]))
                       for i, (s, f) in enumerate(zip(strides, self.feats_T))]

    @classmethod
    def from_config(cls, cfg: Config, image: str, teacher_ckpt: Optional[str] = None,
                    student_ckpt: Optional[str] = None,
                    ann_file: Optional[str] = None) -> 'DistillScene':
        """Build the config's model (see the module docstring) and run ``image`` through it;
        GT boxes from ``ann_file`` (a COCO json)."""
        if not osp.isfile(image):
            raise FileNotFoundError(f'image {image!r} does not exist')
        teacher_ckpt = resolve_teacher_ckpt(cfg, teacher_ckpt)
        model, distiller_trained = build_distill_model(cfg, teacher_ckpt, student_ckpt)
        banners = []
        if teacher_ckpt is None:
            banners.append(RANDOM_TEACHER)
        if not student_ckpt:
            banners.append(INITIAL_STUDENT)
        sample = load_image_sample(cfg, model.data_preprocessor, image, ann_file)
        scene = cls(model, cfg, sample, image, banners, distiller_trained)
        scene.teacher_ckpt, scene.student_ckpt = teacher_ckpt, student_ckpt
        return scene

    # ----------------------------------------------------------------- GT
    @property
    def gt_boxes(self) -> torch.Tensor:
        """G x 4 float GT boxes in input pixels."""
        boxes = self.sample.gt_instances.bboxes
        return getattr(boxes, 'tensor', boxes).float()

    @property
    def gt_np(self) -> np.ndarray:
        return self.gt_boxes.numpy()

    @property
    def gt_labels(self) -> List[str]:
        """``'#i name'`` of each GT box, for the pictures."""
        if self.gt_names:
            return [f'#{i} {n}' for i, n in enumerate(self.gt_names)]
        return [f'#{i}' for i in range(len(self.gt_np))]

    # ----------------------------------------------------------------- pictures
    def picture(self, key: str) -> Picture:
        """A new picture record with the scene's banners."""
        return Picture(key, banners=list(self.banners))

    def spatial_levels(self, picture: Picture) -> List[Level]:
        """Levels with more than one position; a 1x1 level has no spatial distribution to
        show (a softmax or a normalisation over one value is constant): noted and left out."""
        kept = []
        for level in self.levels:
            if level.hw[0] * level.hw[1] > 1:
                kept.append(level)
            else:
                picture.note(f'{level.name} left out: {level.hw[0]}x{level.hw[1]}, one '
                             'position has no spatial distribution')
        return kept

    def untrained_banners(self, what: str, entries: List[LossEntry]) -> List[Banner]:
        """Banners for trainable parts (``what``: align convs, connectors) that hold no trained
        weights: built from the method's defaults, or the config's without a distillation
        checkpoint."""
        banners = []
        if any(e.name is None for e in entries):
            banners.append(('note', f'{what}: the method defaults, untrained (not in the '
                            'config)'))
        if any(e.name is not None for e in entries) and not self.distiller_trained:
            banners.append(('note', f'{what}: untrained (no distillation checkpoint)'))
        return banners

    # ----------------------------------------------------------------- config modules
    def config_losses(self, loss_cls: type) -> List[LossEntry]:
        """The config's losses of ``loss_cls``, each with its neck level and connector."""
        distiller = self.model.distiller
        recorders = {True: distiller.student_recorders.recorders,
                     False: distiller.teacher_recorders.recorders}
        found = []
        for name, loss in distiller.distill_losses.items():
            if not isinstance(loss, loss_cls):
                continue
            mapping = distiller.loss_forward_mappings.get(name, {})
            preds = [mapping.get('preds_S', {}), mapping.get('preds_T', {})]
            on_neck = all(
                getattr(recorders[bool(p.get('from_student'))].get(p.get('recorder')),
                        'source', None) == 'neck' for p in preds)
            connector = preds[0].get('connector')
            found.append(LossEntry(name, loss, preds[0].get('data_idx'),
                                   distiller.connectors[connector] if connector else None,
                                   on_neck))
        return found

    def level_losses(self, loss_cls: type, levels: List[Level],
                     default: Callable[[Level], nn.Module]) -> Dict[int, LossEntry]:
        """For each of ``levels``, the config's per-level ``loss_cls`` on the neck, else
        ``default(level)`` (an entry named None: the method's defaults)."""
        config = {c.level: c for c in self.config_losses(loss_cls)
                  if c.on_neck and c.level is not None}
        return {lv.index: config.get(lv.index) or
                LossEntry(None, default(lv).eval(), lv.index, None, True) for lv in levels}

    def neck_loss(self, loss_cls: type, default: Callable[[], nn.Module]) -> LossEntry:
        """The config's ``loss_cls`` fed with the whole neck, else ``default()``."""
        for c in self.config_losses(loss_cls):
            if c.on_neck and c.level is None:
                return c
        return LossEntry(None, default().eval(), None, None, True)


def describe_source(entries: List[LossEntry], method: str) -> str:
    """``"the config's loss_x_fpn0..loss_x_fpn4"`` or ``"<method> defaults, not in the
    config"``."""
    names = [e.name for e in entries if e.name is not None]
    if not names:
        return f'{method} defaults, not in the config'
    more = ' and defaults elsewhere' if len(names) < len(entries) else ''
    return f'the config\'s {names[0]}' + (f'..{names[-1]}' if len(names) > 1 else '') + more
