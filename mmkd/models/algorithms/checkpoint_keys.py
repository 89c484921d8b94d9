"""Checkpoint keys: the prefixes of distillation checkpoints and a report of what does not fit.

Shared by the teacher loader (:mod:`.teacher_checkpoint`) and the student-only loader and
export (:mod:`.student_only`, ``tools/model_converters/export_student.py``).
"""
from collections import OrderedDict
from typing import List, Mapping, Optional, Tuple

from torch import Tensor

#: what DataParallel / DistributedDataParallel put in front of every key
WRAPPER_PREFIX = 'module.'
#: where mmrazor's algorithms keep the student in ``state_dict()``
STUDENT_PREFIX = 'architecture.'
#: what else a distillation checkpoint holds (teacher if kept, connectors, preprocessor buffers)
NON_STUDENT_PREFIXES = ('distiller.', 'teacher.', 'teachers.', 'data_preprocessor.')


def strip_wrapper_prefix(state: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``state`` with the ``module.`` prefix of a wrapped model's keys removed."""
    return OrderedDict((k[len(WRAPPER_PREFIX):] if k.startswith(WRAPPER_PREFIX) else k, v)
                       for k, v in state.items())


def is_distillation_state(state: Mapping[str, Tensor]) -> bool:
    """Whether every key of a (non-empty) state dict belongs to a distillation algorithm."""
    return bool(state) and all(k.startswith((STUDENT_PREFIX, ) + NON_STUDENT_PREFIXES)
                               for k in strip_wrapper_prefix(state))


def student_state_dict(state: Mapping[str, Tensor]) -> Optional['OrderedDict[str, Tensor]']:
    """The student's weights under mmdet's names, or None when ``state`` holds no
    ``architecture.*`` weights (a plain detector checkpoint)."""
    student = OrderedDict((k[len(STUDENT_PREFIX):], v)
                          for k, v in strip_wrapper_prefix(state).items()
                          if k.startswith(STUDENT_PREFIX))
    return student or None


def key_mismatches(own: Mapping[str, Tensor],
                   state: Mapping[str, Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Keys of a model (``own``) missing in ``state``, keys of ``state`` the model lacks, and
    ``'key: file (shape) vs model (shape)'`` for those of different shapes."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
                   for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, wrong_shape


def describe_mismatches(missing: List[str], unexpected: List[str],
                        wrong_shape: List[str]) -> str:
    """Three indented lines listing the first mismatches of each kind."""
    return (f'  missing in file (first 10 of {len(missing)}): {missing[:10]}\n'
            f'  unexpected in file (first 10 of {len(unexpected)}): {unexpected[:10]}\n'
            f'  wrong shape (first 5 of {len(wrong_shape)}): {wrong_shape[:5]}\n')
