"""The helpers every loss shares: paired levels and the float32 rule."""
import inspect

import pytest
import torch
from torch import nn

import mmkd.models.losses as losses
from mmkd.models.losses.utils import as_levels, check_same_shape, float32_loss, paired_levels


def test_paired_levels_returns_tuples_and_names_the_problem():
    a, b = torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 5)
    assert paired_levels(a, b, 'X') == ((a, ), (b, ))
    assert paired_levels([a, a], (b, b), 'X') == ((a, a), (b, b))
    assert as_levels([a]) == (a, )
    with pytest.raises(ValueError, match='X got 2 student and 1 teacher levels; record'):
        paired_levels([a, a], [b], 'X')
    with pytest.raises(ValueError, match='X needs 3 levels, got 2 student and 2 teacher levels; '
                       'set strides'):
        paired_levels([a, a], [b, b], 'X', num_levels=3, fix='set strides')
    with pytest.raises(ValueError, match=r'X level 1: student \(3, 4, 5\) and teacher '
                       r'\(2, 3, 4, 5\) must both be N x C x H x W'):
        paired_levels([a, a[0]], [b, b], 'X')
    assert paired_levels([a, a], [b, b], 'X', same_shape='fix it') == ((a, a), (b, b))
    with pytest.raises(ValueError, match=r'X level 1: .*\(2, 5, 4, 5\).*same shape; fix it'):
        paired_levels([a, a], [b, torch.zeros(2, 5, 4, 5)], 'X', same_shape='fix it')
    with pytest.raises(ValueError, match=r'X level 1: .*\(2, 3, 4, 6\).*same shape; only the '
                       r'spatial sizes differ'):
        paired_levels([a, a], [b, torch.zeros(2, 3, 4, 6)], 'X', same_shape='fix it')
    paired_levels([a, a], [b, torch.zeros(2, 3, 4, 6)], 'X')  # shapes are the loss's business
    check_same_shape(a, b, 'X', 0, 'fix it')
    with pytest.raises(ValueError, match=r'X level 0: .*\(2, 5, 4, 5\).*same shape; fix it'):
        check_same_shape(a, torch.zeros(2, 5, 4, 5), 'X', 0, 'fix it')
    # only the spatial size differs: the loss's channel fix does not apply, strides do
    with pytest.raises(ValueError, match=r'X level 0: .*\(2, 3, 4, 6\).*same shape; only the '
                       r'spatial sizes differ.*same stride'):
        check_same_shape(a, torch.zeros(2, 3, 4, 6), 'X', 0, 'fix it')


class _Probe(nn.Module):
    """Records the dtypes it sees and computes a matmul, which autocast would run in bf16."""

    @float32_loss
    def forward(self, feats, other, labels, scale=None):
        self.seen = [f.dtype for f in feats[0]] + [other.dtype, labels.dtype, scale.dtype]
        return (other @ other.t()).sum() * scale


def test_float32_loss_casts_nested_inputs_and_disables_autocast():
    x = torch.randn(3, 4, dtype=torch.bfloat16, requires_grad=True)
    feats = ([torch.randn(2, dtype=torch.float16), torch.randn(2, dtype=torch.bfloat16)], )
    labels = torch.tensor([1, 2])
    probe = _Probe()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = probe(feats, x, labels, scale=torch.tensor(2.0, dtype=torch.float16))
    assert probe.seen == [torch.float32] * 3 + [torch.int64, torch.float32]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, (x.float() @ x.float().t()).sum() * 2)
    out.backward()  # the cast is differentiable: the gradient reaches the bf16 input
    assert x.grad is not None and x.grad.dtype == torch.bfloat16


def test_every_loss_follows_the_float32_rule():
    classes = [obj for _, obj in inspect.getmembers(losses, inspect.isclass)
               if issubclass(obj, nn.Module)]
    assert len(classes) >= 11
    for cls in classes:
        assert getattr(cls.forward, 'computes_in_float32', False), \
            f'{cls.__name__}.forward is not decorated with float32_loss'


def test_logit_losses_declare_themselves():
    declared = {name for name, obj in inspect.getmembers(losses, inspect.isclass)
                if getattr(obj, 'compares_class_logits', False)}
    assert declared == {'KDLoss', 'LDLoss', 'GFLLDLoss', 'DKDLoss', 'DeFeatHeadLoss',
                        'KDQualityFocalLoss', 'GFLCrossKDLoss', 'GFLBCKDLoss'}
