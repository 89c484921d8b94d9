"""The teacher's own input normalisation, when it differs from the student's.

The algorithm's data preprocessor (the student's) normalises the batch once, and by default the
teacher sees that tensor. That is right when both were trained with the same ``mean``, ``std``
and channel order (all configs in this repository: pytorch-style ImageNet statistics, RGB). A
teacher trained otherwise, e.g. an mmdet zoo ``caffe`` checkpoint (BGR, ``mean=[103.53, 116.28,
123.675]``, ``std=[1, 1, 1]``), would silently receive inputs it was never trained on and give
poor features with no error anywhere. mmrazor has the same blind spot (its distillers feed the
teacher the student's batch).

:class:`TeacherInputs` maps the student's normalised batch to the teacher's exactly, because both
normalisations are per-channel affine maps of the same raw pixels::

    raw      = x_student * std_s + mean_s            (channel order of the student)
    x_teacher = (flip(raw) - mean_t) / std_t         (flip when exactly one of them swaps BGR/RGB)

Pixels outside each image's ``img_shape`` are padding; they get the teacher's ``pad_value``, as
the teacher's own preprocessor would have written. The batch's padded size stays the student's
(the two models see the same geometry, which feature losses need), so a teacher
``pad_size_divisor`` that does not divide that size is refused at build, and teacher
``batch_augments`` are not applied (the student's already were) with a warning.
"""
import warnings
from typing import List, Optional

import torch
from torch import nn


def _stats(preprocessor: nn.Module):
    if getattr(preprocessor, '_enable_normalize', False):
        return preprocessor.mean, preprocessor.std
    return None, None


def _description(preprocessor: nn.Module) -> str:
    mean, std = _stats(preprocessor)
    swap = bool(getattr(preprocessor, '_channel_conversion', False))
    stats = 'no normalisation' if mean is None else (
        f'mean={[round(float(v), 3) for v in mean.flatten()]}, '
        f'std={[round(float(v), 3) for v in std.flatten()]}')
    return f'{stats}, channel swap={swap}'


class TeacherInputs:
    """Re-normalise the student's batch for a teacher with different input statistics.

    Args:
        student_preprocessor (nn.Module): the algorithm's data preprocessor.
        teacher_preprocessor (nn.Module): the teacher model's own ``data_preprocessor``.
    """

    def __init__(self, student_preprocessor: nn.Module, teacher_preprocessor: nn.Module) -> None:
        self.student = student_preprocessor
        self.teacher = teacher_preprocessor
        self.needed = self._differ()
        if not self.needed:
            return
        divisor = int(getattr(teacher_preprocessor, 'pad_size_divisor', 1) or 1)
        student_divisor = int(getattr(student_preprocessor, 'pad_size_divisor', 1) or 1)
        if student_divisor % divisor:
            raise ValueError(
                f"The teacher's data_preprocessor pads to multiples of {divisor} but the "
                f"student's to {student_divisor}; the teacher sees the student's padded batch, so "
                f"set the student's pad_size_divisor to a multiple of {divisor}.")
        if getattr(teacher_preprocessor, 'batch_augments', None):
            warnings.warn("The teacher's data_preprocessor has batch_augments; they are not "
                          "applied (the teacher sees the student's augmented batch).")

    def _differ(self) -> bool:
        s_mean, s_std = _stats(self.student)
        t_mean, t_std = _stats(self.teacher)
        if bool(getattr(self.student, '_channel_conversion', False)) != bool(
                getattr(self.teacher, '_channel_conversion', False)):
            return True
        if (s_mean is None) != (t_mean is None):
            return True
        if s_mean is not None and not (torch.allclose(s_mean.float(), t_mean.float())
                                       and torch.allclose(s_std.float(), t_std.float())):
            return True
        return float(getattr(self.student, 'pad_value', 0)) != float(
            getattr(self.teacher, 'pad_value', 0))

    def describe(self) -> str:
        return (f"student inputs: {_description(self.student)}; teacher inputs: "
                f"{_description(self.teacher)}")

    def __call__(self, batch_inputs: torch.Tensor,
                 data_samples: Optional[List] = None) -> torch.Tensor:
        """The teacher's normalised batch (``batch_inputs`` itself when nothing differs)."""
        if not self.needed:
            return batch_inputs
        x = batch_inputs.float()
        s_mean, s_std = _stats(self.student)
        t_mean, t_std = _stats(self.teacher)
        raw = x if s_mean is None else x * s_std.to(x) + s_mean.to(x)
        if bool(getattr(self.student, '_channel_conversion', False)) != bool(
                getattr(self.teacher, '_channel_conversion', False)):
            raw = raw.flip(1)
        out = raw if t_mean is None else (raw - t_mean.to(x)) / t_std.to(x)
        pad_value = float(getattr(self.teacher, 'pad_value', 0))
        if data_samples:
            valid = torch.zeros(out.shape[0], 1, *out.shape[2:], dtype=torch.bool,
                                device=out.device)
            for i, sample in enumerate(data_samples):
                h, w = sample.metainfo.get('img_shape', out.shape[2:])[:2]
                valid[i, :, :h, :w] = True
            out = torch.where(valid, out, out.new_tensor(pad_value))
        return out.to(batch_inputs.dtype)
