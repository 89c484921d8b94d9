"""ChannelWiseDivergence against mmrazor's and mmdetection-distiller's formulas."""
import pytest
import torch

from mmkd.models.losses.cwd import ChannelWiseDivergence
from oracles import cwd_oracle, rel_err

TOL = 1e-5


def features(n=2, c=6, h=7, w=9, seed=0, dtype=torch.float32, cs=None):
    gen = torch.Generator().manual_seed(seed)
    S = (torch.randn(n, cs or c, h, w, generator=gen) * 2).to(dtype).requires_grad_()
    T = (torch.randn(n, c, h, w, generator=gen) * 2).to(dtype)
    return S, T


def check(loss, S, T, ref_fn):
    out = loss(S, T)
    ref = ref_fn(S.float(), T.float())
    assert out.dtype == torch.float32 and out.dim() == 0
    assert rel_err(out, ref) < TOL, (out, ref)
    g = torch.autograd.grad(out, S, retain_graph=True)[0]
    g_ref = torch.autograd.grad(ref, S)[0]
    # a gradient w.r.t. an fp16/bf16 input is rounded to that dtype
    tol = TOL if g.dtype == torch.float32 else max(TOL, 2 * torch.finfo(g.dtype).eps)
    assert rel_err(g, g_ref) < tol
    return out, ref


@pytest.mark.parametrize('form', ['kl', 'ce'])
@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_matches_official(form, tau):
    loss = ChannelWiseDivergence(tau=tau, loss_weight=3.0, form=form)
    S, T = features()
    check(loss, S, T, lambda s, t: cwd_oracle(s, t, tau, 3.0, form))


def test_kl_and_ce_same_gradient_and_offset_is_teacher_entropy():
    S, T = features()
    kl = ChannelWiseDivergence(tau=2.0, form='kl')(S, T)
    ce = ChannelWiseDivergence(tau=2.0, form='ce')(S, T)
    g_kl = torch.autograd.grad(kl, S)[0]
    g_ce = torch.autograd.grad(ce, S)[0]
    assert rel_err(g_kl, g_ce) < TOL
    n, c, h, w = T.shape
    p = torch.softmax(T.reshape(n * c, h * w) / 2.0, dim=1)
    entropy = -(p * p.log()).sum() * 4.0 / (n * c)
    assert rel_err(ce - kl, entropy) < 1e-4
    # identical maps: KL is zero
    assert ChannelWiseDivergence()(T, T).abs() < 1e-6


def test_levels_are_summed():
    loss = ChannelWiseDivergence(tau=1.0, loss_weight=2.0)
    levels = [features(h=h, w=w, seed=h) for h, w in [(8, 10), (4, 5), (1, 1)]]
    S, T = zip(*levels)
    out = loss(S, T)
    ref = sum(cwd_oracle(s, t, 1.0, 2.0) for s, t in levels)
    assert rel_err(out, ref) < TOL


@pytest.mark.parametrize('hw', [(1, 1), (1, 5)])
def test_tiny_levels(hw):
    S, T = features(h=hw[0], w=hw[1])
    check(ChannelWiseDivergence(), S, T, lambda s, t: cwd_oracle(s, t))


def test_batch_of_one():
    S, T = features(n=1)
    check(ChannelWiseDivergence(tau=2.0), S, T, lambda s, t: cwd_oracle(s, t, 2.0))


def test_align_when_channels_differ():
    loss = ChannelWiseDivergence(form='ce', student_channels=4, teacher_channels=6)
    S, T = features(cs=4)
    w, b = loss.align.weight, loss.align.bias
    out, _ = check(loss, S, T,
                   lambda s, t: cwd_oracle(torch.nn.functional.conv2d(s, w, b), t, form='ce'))
    assert torch.autograd.grad(out, w)[0].abs().sum() > 0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    S, T = features(dtype=dtype)
    out, _ = check(ChannelWiseDivergence(tau=1.0), S, T, lambda s, t: cwd_oracle(s, t))
    grad = torch.autograd.grad(ChannelWiseDivergence()(S, T), S)[0]
    assert grad.dtype == dtype


def test_autocast_bf16_returns_fp32():
    loss = ChannelWiseDivergence(student_channels=4, teacher_channels=6)
    S, T = features(cs=4)
    ref = loss(S, T)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(S, T)
    assert out.dtype == torch.float32 and torch.equal(out, ref)


def test_clear_errors():
    S, T = features(cs=4)
    with pytest.raises(ValueError, match=r'\(2, 4, 7, 9\).*\(2, 6, 7, 9\).*student_channels'):
        ChannelWiseDivergence()(S, T)
    with pytest.raises(ValueError, match='form'):
        ChannelWiseDivergence(form='js')


@pytest.mark.parametrize('tau', [1.0, 3.0])
def test_matches_mmrazor(tau):
    pytest.importorskip('mmrazor')
    import mmkd  # noqa: F401  (patches mmrazor's imports on new torch)
    from mmrazor.models.losses import ChannelWiseDivergence as RazorCWD
    S, T = features(h=10, w=6)
    out = ChannelWiseDivergence(tau=tau, loss_weight=5.0)(S, T)
    ref = RazorCWD(tau=tau, loss_weight=5.0)(S, T)
    assert rel_err(out, ref) < TOL
    assert rel_err(torch.autograd.grad(out, S)[0], torch.autograd.grad(ref, S)[0]) < TOL


def test_builds_from_registry():
    from mmkd.registry import MODELS
    loss = MODELS.build(dict(type='mmkd.ChannelWiseDivergence', tau=1.0, loss_weight=10))
    assert isinstance(loss, ChannelWiseDivergence) and loss.loss_weight == 10
