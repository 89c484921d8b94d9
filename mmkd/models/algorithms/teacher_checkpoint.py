"""Loading a frozen teacher's weights, refusing files that do not fit it."""
import os.path as osp
from typing import Dict

import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint, load_state_dict
from torch import nn

from .checkpoint_keys import (describe_mismatches, is_distillation_state, key_mismatches,
                              strip_wrapper_prefix, student_state_dict)

_REMOTE = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
           's3://', 'modelzoo://')


class TeacherCheckpointError(RuntimeError):
    """The teacher checkpoint is missing, unreadable or does not fit the teacher model."""


def _state_dict_of(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise TeacherCheckpointError(f'no state_dict in it (found {type(checkpoint).__name__})')
    # an mmkd/mmrazor distillation checkpoint: use its student ("architecture.") weights
    if is_distillation_state(state):
        return student_state_dict(state) or {}
    return strip_wrapper_prefix(state)


def load_teacher_checkpoint(teacher: nn.Module, path: str, min_match: float = 0.5) -> None:
    """Load ``path`` into ``teacher``; raise :class:`TeacherCheckpointError` with the fix.

    At least ``min_match`` of the teacher's weights must be found in the file with the right
    shape; otherwise the file is for another model and the first unmatched keys are listed.
    """
    fix = ('Set `model.teacher_ckpt` to the checkpoint of the teacher described by '
           '`model.teacher` (e.g. with --cfg-options model.teacher_ckpt=PATH).')
    if not path.startswith(_REMOTE) and not osp.isfile(path):
        raise TeacherCheckpointError(f'teacher checkpoint {path!r} does not exist. {fix}')
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
        state = _state_dict_of(checkpoint)
    except TeacherCheckpointError as e:
        raise TeacherCheckpointError(f'teacher checkpoint {path!r}: {e}. {fix}') from e
    except Exception as e:  # unreadable, truncated, refused by weights_only, download failed
        raise TeacherCheckpointError(
            f'could not read teacher checkpoint {path!r}: {type(e).__name__}: {e}. {fix}') from e

    own = teacher.state_dict()
    matched = [k for k, v in own.items() if k in state and tuple(state[k].shape) == tuple(v.shape)]
    if len(matched) < min_match * max(len(own), 1):
        raise TeacherCheckpointError(
            f'teacher checkpoint {path!r} does not fit the teacher '
            f'({type(teacher).__name__}): only {len(matched)} of {len(own)} weights match.\n'
            f'{describe_mismatches(*key_mismatches(own, state))}{fix}')
    load_state_dict(teacher, state, strict=False, logger=MMLogger.get_current_instance())
