"""The student alone, out of a distillation config and checkpoint (for testing and export).

Evaluating a distilled detector needs only the student: mmrazor's ``SingleTeacherDistill`` (and
``DetectionDistill``) predict with the student. Building the whole distillation model for a test
would load (or download) the teacher's checkpoint, which fails offline and costs the teacher's
memory, for nothing. These helpers give the student's own mmdet config and weights instead.
"""
import copy
import warnings
from collections import OrderedDict
from typing import Dict

from mmengine.config import ConfigDict
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from .checkpoint_keys import (NON_STUDENT_PREFIXES, describe_mismatches, key_mismatches,
                              strip_wrapper_prefix, student_state_dict)
from .model_cfg import expand_model_cfg


def is_distillation_cfg(model_cfg) -> bool:
    """Whether ``model_cfg`` describes a distillation algorithm (student under ``architecture``)."""
    return isinstance(model_cfg, dict) and 'architecture' in model_cfg and 'distiller' in model_cfg


def student_model_cfg(model_cfg: dict) -> ConfigDict:
    """The student's mmdet model config of a distillation model config.

    The algorithm's ``data_preprocessor``, when the config sets one, replaces the student's: that
    is the one the student was trained behind.
    """
    if not is_distillation_cfg(model_cfg):
        raise ValueError('not a distillation model config (it has no `architecture` and '
                         '`distiller`).')
    student = ConfigDict(copy.deepcopy(expand_model_cfg(model_cfg['architecture'])))
    if model_cfg.get('data_preprocessor'):
        student['data_preprocessor'] = copy.deepcopy(model_cfg['data_preprocessor'])
    return student


def load_student_weights(model: nn.Module, path: str) -> Dict:
    """Load the student's weights of ``path`` (a distillation checkpoint or a plain/exported
    detector checkpoint) into ``model``, strictly; return the checkpoint.

    Strict because a test on half-loaded weights gives a wrong mAP without any error.
    """
    checkpoint = _load_checkpoint(path, map_location='cpu')
    if isinstance(checkpoint, dict) and 'ema_state_dict' in checkpoint:
        warnings.warn(f'{path} also holds EMA weights (EMAHook); the student is tested with its '
                      'raw weights. Use tools/test.py --full-model to let the EMAHook of the '
                      'config swap the EMA weights in.')
    state = checkpoint.get('state_dict', checkpoint)
    student = student_state_dict(state)
    if student is None:  # plain detector checkpoint
        student = OrderedDict((k, v) for k, v in strip_wrapper_prefix(state).items()
                              if not k.startswith(NON_STUDENT_PREFIXES))
    mismatches = key_mismatches(model.state_dict(), student)
    if any(mismatches):
        raise RuntimeError(
            f'{path} does not fit the student of this config ({type(model).__name__}):\n'
            f'{describe_mismatches(*mismatches)}'
            'Test a checkpoint with the config it was trained with.')
    model.load_state_dict(student, strict=True)
    return checkpoint
