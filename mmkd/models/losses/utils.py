"""What mmkd's distillation losses share: paired feature levels, input checks, float32 compute.

**Float32 rule.** Every loss computes in float32, whatever precision the models ran in: its
``forward`` is wrapped by :func:`float32_loss`, which casts the floating-point tensors among the
arguments (also inside lists and tuples, e.g. FPN levels or a head's ``(cls_scores,
bbox_preds)``) to float32 and disables autocast for the call. Sums over C*H*W overflow fp16, a
softmax over H*W or over 17 bins loses its tail in bf16, and ``log`` of a small probability
underflows; the values the tests compare against the official code are float32 values. The
distiller (:class:`~mmkd.models.algorithms.DetectionDistiller`) also disables autocast around
the whole loss computation, so connectors run in float32 too; a loss used on its own keeps the
rule through its decorator. Losses return float32 scalars (or dicts of them).
"""
import functools
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

#: One feature map (N x C x H x W) or a sequence of them, one per level.
Feats = Union[Tensor, Sequence[Tensor]]


def as_levels(feats: Feats) -> Tuple[Tensor, ...]:
    """A single map as a one-level tuple, a sequence of maps as a tuple."""
    return (feats, ) if isinstance(feats, Tensor) else tuple(feats)


def paired_levels(preds_S: Feats,
                  preds_T: Feats,
                  loss_name: str,
                  num_levels: Optional[int] = None,
                  fix: str = 'record the same levels on both models',
                  same_shape: Optional[str] = None) -> Tuple[Tuple[Tensor, ...],
                                                             Tuple[Tensor, ...]]:
    """Student and teacher levels as tuples of N x C x H x W maps, checked pairwise.

    Raises a ``ValueError`` naming ``loss_name`` when the numbers of levels differ (or differ
    from ``num_levels``) or a map is not 4-D. Shapes within a pair are the loss's business
    (some losses align channels or resize); a loss that compares the maps element by element
    passes ``same_shape``, the fix :func:`check_same_shape` names for a pair that differs.
    """
    levels_S, levels_T = as_levels(preds_S), as_levels(preds_T)
    expected = len(levels_T) if num_levels is None else num_levels
    if len(levels_S) != expected or len(levels_T) != expected:
        needs = '' if num_levels is None else f'needs {num_levels} levels, '
        raise ValueError(f'{loss_name} {needs}got {len(levels_S)} student and {len(levels_T)} '
                         f'teacher levels; {fix}.')
    for idx, (feat_S, feat_T) in enumerate(zip(levels_S, levels_T)):
        if feat_S.dim() != 4 or feat_T.dim() != 4:
            raise ValueError(f'{loss_name} level {idx}: student {tuple(feat_S.shape)} and '
                             f'teacher {tuple(feat_T.shape)} must both be N x C x H x W '
                             'feature maps.')
        if same_shape is not None:
            check_same_shape(feat_S, feat_T, loss_name, idx, same_shape)
    return levels_S, levels_T


def check_same_shape(feat_S: Tensor, feat_T: Tensor, loss_name: str, idx: int, fix: str) -> None:
    """Refuse a student/teacher pair of different shapes, naming both and the ``fix`` (which
    is for channels: when only the spatial sizes differ, the hint is about strides instead)."""
    if feat_S.shape != feat_T.shape:
        if feat_S.shape[:2] == feat_T.shape[:2]:
            fix = ('only the spatial sizes differ, so these are levels of different strides: '
                   'pair student and teacher levels of the same stride (data_idx).')
        raise ValueError(f'{loss_name} level {idx}: student {tuple(feat_S.shape)} and teacher '
                         f'{tuple(feat_T.shape)} must be N x C x H x W of the same shape; {fix}')


def check_roi_logits(preds_S: Tensor, preds_T: Tensor, gt_labels: Tensor,
                     loss_name: str) -> Tensor:
    """Refuse RoI logits of student and teacher that are not both RoIs x (K + 1) of one shape,
    or labels that are not one per RoI; return the labels flattened."""
    if preds_S.dim() != 2 or preds_S.shape != preds_T.shape:
        raise ValueError(
            f'{loss_name} needs student and teacher RoI logits of the same shape (RoIs x '
            f'(num_classes + 1)); got student {tuple(preds_S.shape)} and teacher '
            f'{tuple(preds_T.shape)}. Both RoI heads must have the same num_classes and run on '
            'the same RoIs.')
    gt_labels = gt_labels.reshape(-1)
    if gt_labels.numel() != preds_S.shape[0]:
        raise ValueError(f'{loss_name} got {gt_labels.numel()} labels for {preds_S.shape[0]} '
                         'RoIs; pass the labels of the sampled RoIs the logits were computed on.')
    return gt_labels


#: mmdet's reductions of a loss's elements (``weight_reduce_loss``)
REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, loss_name: str) -> None:
    """Refuse a reduction that mmdet's ``weight_reduce_loss`` does not know."""
    if reduction not in REDUCTIONS:
        raise ValueError(f'{loss_name}: reduction must be one of {REDUCTIONS}, got '
                         f'{reduction!r}.')


def check_row_weight(weight: Optional[Tensor], preds: Tensor, loss_name: str) -> None:
    """Refuse a weight of a row-wise loss that is not one value per row of ``preds``."""
    if weight is not None and weight.shape != preds.shape[:1]:
        raise ValueError(f'{loss_name}: weight must have one value per row, shape '
                         f'{tuple(preds.shape[:1])}, got {tuple(weight.shape)}.')


def _to_float32(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if type(value) in (list, tuple):  # plain containers only (not named tuples, torch.Size)
        return type(value)(_to_float32(v) for v in value)
    return value


def _device_type(values: Sequence[Any]) -> str:
    for value in values:
        if isinstance(value, Tensor):
            return value.device.type
        if isinstance(value, (list, tuple)):
            found = _device_type(value)
            if found:
                return found
    return ''


def float32_loss(forward: Callable) -> Callable:
    """Decorate a loss's ``forward`` to follow the float32 rule (module docstring).

    Floating-point tensors among the arguments, also inside lists and tuples, are cast to
    float32 (a differentiable cast: gradients reach the inputs in their own dtype); other
    arguments (labels, ``InstanceData``, metas) are passed unchanged. Autocast is disabled on
    the inputs' device for the whole call.
    """

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        args = _to_float32(args)
        kwargs = {key: _to_float32(value) for key, value in kwargs.items()}
        device_type = _device_type(list(args) + list(kwargs.values())) or 'cpu'
        with torch.autocast(device_type=device_type, enabled=False):
            return forward(self, *args, **kwargs)

    wrapper.computes_in_float32 = True
    return wrapper
