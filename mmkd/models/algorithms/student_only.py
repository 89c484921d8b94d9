"""The student alone, out of a distillation config and checkpoint (for testing and export).

Evaluating a distilled detector needs only the student: mmrazor's ``SingleTeacherDistill`` (and
``DetectionDistill``) predict with the student. Building the whole distillation model for a test
would load (or download) the teacher's checkpoint, which fails offline and costs the teacher's
memory, for nothing. These helpers give the student's own mmdet config and weights instead.
"""
import copy
import warnings
from collections import OrderedDict
from typing import Dict, Optional

from mmengine.config import ConfigDict
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from .model_cfg import expand_model_cfg

#: where mmrazor's algorithms keep the student in ``state_dict()``
STUDENT_PREFIX = 'architecture.'
#: what else a distillation checkpoint holds (teacher if kept, connectors, preprocessor buffers)
NON_STUDENT_PREFIXES = ('distiller.', 'teacher.', 'teachers.', 'data_preprocessor.')


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


def student_state_dict(state: Dict) -> Optional[OrderedDict]:
    """The student's weights under mmdet's names, or None when ``state`` holds no
    ``architecture.*`` weights (a plain detector checkpoint)."""
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())
    student = OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state.items()
                          if k.startswith(STUDENT_PREFIX))
    return student or None


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
        student = OrderedDict((k[7:] if k.startswith('module.') else k, v)
                              for k, v in state.items()
                              if not k.startswith(NON_STUDENT_PREFIXES))
    own = model.state_dict()
    missing = [k for k in own if k not in student]
    unexpected = [k for k in student if k not in own]
    wrong = [f'{k}: file {tuple(student[k].shape)} vs model {tuple(own[k].shape)}'
             for k in own if k in student and student[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise RuntimeError(
            f'{path} does not fit the student of this config ({type(model).__name__}):\n'
            f'  missing in file (first 10 of {len(missing)}): {missing[:10]}\n'
            f'  unexpected in file (first 10 of {len(unexpected)}): {unexpected[:10]}\n'
            f'  wrong shape (first 5 of {len(wrong)}): {wrong[:5]}\n'
            'Test a checkpoint with the config it was trained with.')
    model.load_state_dict(student, strict=True)
    return checkpoint
