"""Loading a frozen teacher's weights, refusing files that do not fit it.

Every weight of the teacher (backbone, neck, heads: its whole ``state_dict`` but BN's
``num_batches_tracked`` counters) must be in the file with its shape. A teacher that silently
keeps random weights is worse than none: mmengine's non-strict loading accepts, for example, a
ResNeXt-50 checkpoint for a ResNeXt-101 teacher (368 of 674 weights match; blocks 6-22 of
layer3 stay random) with one warning in the log. Weights that are meant to stay as initialised
(e.g. a classifier trained for other classes) are listed by name in ``allow_missing``. Keys of
the file that the teacher does not have are only reported.
"""
import fnmatch
import os.path as osp
from collections import Counter
from typing import Dict, List, Sequence

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

from mmkd.engine.checkpoint_downloads import CheckpointDownloadError
from .checkpoint_keys import (describe_mismatches, is_distillation_state, key_mismatches,
                              strip_wrapper_prefix, student_state_dict)

_REMOTE = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
           's3://', 'modelzoo://')
#: BN's batch counters: absent from old checkpoints, unused in eval mode (mmengine skips them too)
_IGNORED_SUFFIX = 'num_batches_tracked'


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


def is_allowed(key: str, allow_missing: Sequence[str]) -> bool:
    """Whether ``key`` is named by ``allow_missing``: a module or weight name (``key`` itself or
    anything under it) or a glob pattern (``*``, ``?``, ``[...]``) matched against the key."""
    for pattern in allow_missing:
        if any(c in pattern for c in '*?['):
            if fnmatch.fnmatchcase(key, pattern):
                return True
        elif key == pattern or key.startswith(pattern + '.'):
            return True
    return False


def _by_module(keys: List[str], depth: int = 3, limit: int = 12) -> str:
    """``backbone.layer3.6.* (13), ...``: keys grouped by their first ``depth`` names."""
    groups = Counter('.'.join(k.split('.')[:depth]) for k in keys)
    shown = [f'{g}.* ({n})' if n > 1 or g not in keys else g
             for g, n in list(groups.items())[:limit]]
    more = len(groups) - limit
    return ', '.join(shown) + (f', ... and {more} more modules' if more > 0 else '')


def _missing_file_message(path: str, fix: str) -> str:
    message = f'teacher checkpoint {path!r} does not exist. {fix}'
    name = osp.basename(path)
    if 'work_dirs/toy/' in path.replace('\\', '/') and name.startswith('teacher_'):
        stem = name[len('teacher_'):-len('.pth')]
        method = 'dkd' if 'faster-rcnn' in stem else 'pkd'
        message += (f' This is a toy teacher, which the toy main job trains and puts there: run '
                    f'`make toy METHODS={method}` (or `python tools/toy_main_job.py --methods '
                    f'{method}`) from the repository root, or train it alone with `python '
                    f'tools/train.py configs/toy/{stem}.py` and copy its last checkpoint to '
                    f'{path}.')
    return message


def load_teacher_checkpoint(teacher: nn.Module, path: str, allow_missing: Sequence[str] = (),
                            min_match: float = 0.5) -> None:
    """Load ``path`` into ``teacher``; raise :class:`TeacherCheckpointError` with the fix.

    Fewer than ``min_match`` of the teacher's weights found with the right shape: the file is
    for another model, and the first unmatched keys are listed. Otherwise every weight the file
    lacks or has with another shape is refused (listed by module) unless ``allow_missing``
    names it (:func:`is_allowed`); such weights keep their initial values. Keys of the file the
    teacher lacks are reported in the log.
    """
    fix = ('Set `model.teacher_ckpt` to the checkpoint of the teacher described by '
           '`model.teacher` (e.g. with --cfg-options model.teacher_ckpt=PATH).')
    if isinstance(allow_missing, str):
        allow_missing = (allow_missing, )
    if not path.startswith(_REMOTE) and not osp.isfile(path):
        raise TeacherCheckpointError(_missing_file_message(path, fix))
    try:
        checkpoint = _load_checkpoint(path, map_location='cpu')
        state = _state_dict_of(checkpoint)
    except TeacherCheckpointError as e:
        raise TeacherCheckpointError(f'teacher checkpoint {path!r}: {e}. {fix}') from e
    except CheckpointDownloadError as e:
        raise TeacherCheckpointError(
            f'could not download the teacher checkpoint (model.teacher_ckpt): {e} With a local '
            f'copy: --cfg-options model.teacher_ckpt=/local/path/{osp.basename(e.url)}') from e
    except Exception as e:  # unreadable, truncated, refused by weights_only
        raise TeacherCheckpointError(
            f'could not read teacher checkpoint {path!r}: {type(e).__name__}: {e}. {fix}') from e

    own = teacher.state_dict()
    missing, unexpected, wrong_shape = key_mismatches(own, state)
    matched = len(own) - len(missing) - len(wrong_shape)
    if matched < min_match * max(len(own), 1):
        raise TeacherCheckpointError(
            f'teacher checkpoint {path!r} does not fit the teacher '
            f'({type(teacher).__name__}): only {matched} of {len(own)} weights match.\n'
            f'{describe_mismatches(missing, unexpected, wrong_shape)}{fix}')
    wrong_keys = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    refused_missing = [k for k in missing
                       if not k.endswith(_IGNORED_SUFFIX) and not is_allowed(k, allow_missing)]
    refused_shape = [d for k, d in zip(wrong_keys, wrong_shape) if not is_allowed(k, allow_missing)]
    if refused_missing or refused_shape:
        lines = []
        if refused_missing:
            lines.append(f'  missing in the file ({len(refused_missing)}): '
                         f'{_by_module(refused_missing)}')
        if refused_shape:
            lines.append(f'  another shape in the file ({len(refused_shape)}, first 5): '
                         f'{refused_shape[:5]}')
        example = (refused_missing or [k for k in wrong_keys
                                       if not is_allowed(k, allow_missing)])[0]
        module = '.'.join(example.split('.')[:min(3, example.count('.'))])  # its module
        raise TeacherCheckpointError(
            f'teacher checkpoint {path!r} does not fully fit the teacher '
            f'({type(teacher).__name__}): {matched} of {len(own)} weights match, the others '
            'would keep their random initial values.\n' + '\n'.join(lines) + '\nA checkpoint '
            'of another depth or width (e.g. ResNeXt-50 weights for a ResNeXt-101 teacher) looks '
            f'like this. {fix} If these weights are meant to keep their initial values, name '
            'them (modules, weights or glob patterns) in `model.teacher_ckpt_allow_missing`, '
            f"e.g. teacher_ckpt_allow_missing=['{module}'].")
    if unexpected:
        print_log(f'teacher checkpoint {path!r}: {len(unexpected)} key(s) the teacher does not '
                  f'have were ignored: {_by_module(unexpected)}', logger='current', level=30)
    usable = {k: v for k, v in state.items()
              if k in own and tuple(v.shape) == tuple(own[k].shape)}
    teacher.load_state_dict(usable, strict=False)
