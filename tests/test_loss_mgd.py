"""MGDConnector + MGDLoss against yzd-v/MGD's det ``FeatureLoss`` and mmrazor's MGD."""
import pytest
import torch

from mmkd.models.connectors.mgd import MGDConnector
from mmkd.models.losses.mgd import MGDLoss
from oracles import mgd_oracle, rel_err

TOL = 1e-5


def features(n=2, cs=6, ct=6, h=7, w=9, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(n, cs, h, w, generator=gen).to(dtype).requires_grad_()
    T = torch.randn(n, ct, h, w, generator=gen).to(dtype)
    return S, T


def fixed_mask(n, h, w, ratio=0.65, seed=5):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, h, w, generator=gen) <= 1 - ratio).float()


def check(connector, loss, S, T, mat, monkeypatch):
    monkeypatch.setattr(connector, 'random_mask', lambda feature: mat.to(feature.dtype))
    out = loss(connector(S), T)
    params = dict(connector.named_parameters())
    ref = mgd_oracle(S.float(), T.float(), mat, params, loss.alpha_mgd)
    assert out.dtype == torch.float32 and out.dim() == 0
    assert rel_err(out, ref) < TOL, (out, ref)
    leaves = [S] + list(params.values())
    for name, g, g_ref in zip(['S'] + list(params), torch.autograd.grad(out, leaves),
                              torch.autograd.grad(ref, leaves)):
        # a gradient w.r.t. an fp16/bf16 input is rounded to that dtype
        tol = TOL if g.dtype == torch.float32 else max(TOL, 2 * torch.finfo(g.dtype).eps)
        assert rel_err(g, g_ref) < tol, name
    return out


def test_matches_official(monkeypatch):
    S, T = features()
    check(MGDConnector(6, 6), MGDLoss(alpha_mgd=2e-5), S, T, fixed_mask(2, 7, 9), monkeypatch)


def test_defaults():
    conn, loss = MGDConnector(256, 256), MGDLoss()
    assert conn.lambda_mgd == 0.65 and not conn.mask_on_channel and conn.align is None
    assert loss.alpha_mgd == 2e-5


def test_student_channels_differ(monkeypatch):
    S, T = features(cs=4, ct=6)
    conn = MGDConnector(4, 6)
    assert conn.align is not None
    check(conn, MGDLoss(1.0), S, T, fixed_mask(2, 7, 9), monkeypatch)


@pytest.mark.parametrize('hw', [(1, 1), (2, 1)])
def test_tiny_levels(hw, monkeypatch):
    S, T = features(h=hw[0], w=hw[1])
    check(MGDConnector(6, 6), MGDLoss(1.0), S, T, fixed_mask(2, *hw, seed=1), monkeypatch)


def test_batch_of_one(monkeypatch):
    S, T = features(n=1)
    check(MGDConnector(6, 6), MGDLoss(1.0), S, T, fixed_mask(1, 7, 9), monkeypatch)


def test_all_masked_and_nothing_masked(monkeypatch):
    S, T = features()
    conn = MGDConnector(6, 6)
    check(conn, MGDLoss(1.0), S, T, torch.zeros(2, 1, 7, 9), monkeypatch)
    monkeypatch.undo()
    conn0 = MGDConnector(6, 6, lambda_mgd=0.0)
    out = conn0(S)
    assert torch.allclose(out, conn0.generation(S))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype, monkeypatch):
    S, T = features(dtype=dtype)
    out = check(MGDConnector(6, 6), MGDLoss(1.0), S, T, fixed_mask(2, 7, 9), monkeypatch)
    assert out.dtype == torch.float32


def test_autocast_bf16_loss_in_fp32():
    torch.manual_seed(0)
    S, T = features()
    conn = MGDConnector(6, 6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        gen = conn(S)
        out = MGDLoss(1.0)(gen, T)
    assert gen.dtype == torch.bfloat16  # the connector follows autocast
    assert out.dtype == torch.float32
    ref = MGDLoss(1.0)(gen.float(), T)
    assert rel_err(out, ref) < TOL
    out.backward()
    assert S.grad is not None and torch.isfinite(S.grad).all()


def test_mask_is_drawn_on_the_input_device():
    conn = MGDConnector(6, 6)
    feat = torch.empty(2, 6, 5, 5, device='meta', dtype=torch.float16)
    mask = conn.random_mask(feat)
    assert mask.device.type == 'meta' and mask.dtype == torch.float16
    assert mask.shape == (2, 1, 5, 5)


@pytest.mark.parametrize('ratio', [0.65, 0.45, 0.0, 1.0])
def test_spatial_drop_ratio(ratio):
    torch.manual_seed(0)
    conn = MGDConnector(3, 3, lambda_mgd=ratio)
    mask = conn.random_mask(torch.zeros(8, 3, 100, 125))
    assert mask.shape == (8, 1, 100, 125)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    dropped = 1 - mask.mean().item()
    # 100000 Bernoulli draws: std 0.0015, allow ~6 sigma
    assert abs(dropped - ratio) < 0.01


def test_channel_drop_ratio():
    torch.manual_seed(0)
    conn = MGDConnector(3, 3, lambda_mgd=0.15, mask_on_channel=True)
    mask = conn.random_mask(torch.zeros(16, 4096, 2, 2))
    assert mask.shape == (16, 4096, 1, 1)
    assert abs((1 - mask.mean().item()) - 0.15) < 0.01


def test_new_mask_each_call_and_seeded():
    S, _ = features()
    conn = MGDConnector(6, 6)
    torch.manual_seed(3)
    a = conn(S)
    b = conn(S)
    torch.manual_seed(3)
    c = conn(S)
    assert not torch.equal(a, b)
    assert torch.equal(a, c)


def test_clear_errors():
    S, T = features(cs=4, ct=6)
    with pytest.raises(ValueError, match=r'\(2, 4, 7, 9\).*\(2, 6, 7, 9\).*MGDConnector'):
        MGDLoss()(S, T)
    with pytest.raises(ValueError, match=r'student_channels=6.*\(2, 4, 7, 9\)'):
        MGDConnector(6, 6)(S)


@pytest.mark.parametrize('mask_on_channel', [False, True])
def test_matches_mmrazor(mask_on_channel):
    pytest.importorskip('mmrazor')
    import mmkd  # noqa: F401  (patches mmrazor's imports on new torch)
    from mmrazor.models.architectures.connectors import MGDConnector as RazorConnector
    from mmrazor.models.losses import MGDLoss as RazorMGDLoss
    S, T = features(cs=4, ct=6, h=11, w=13)
    ours = MGDConnector(4, 6, mask_on_channel=mask_on_channel)
    theirs = RazorConnector(4, 6, mask_on_channel=mask_on_channel)
    theirs.load_state_dict(ours.state_dict())
    # on the CPU both draw the same uniform numbers for the same seed
    torch.manual_seed(7)
    out = MGDLoss(2e-5)(ours(S), T)
    torch.manual_seed(7)
    ref = RazorMGDLoss(2e-5)(theirs(S), T)
    assert rel_err(out, ref) < TOL
    g = torch.autograd.grad(out, [S] + list(ours.parameters()))
    g_ref = torch.autograd.grad(ref, [S] + list(theirs.parameters()))
    for a, b in zip(g, g_ref):
        assert rel_err(a, b) < TOL


def test_builds_from_registry():
    from mmkd.registry import MODELS
    conn = MODELS.build(dict(type='mmkd.MGDConnector', student_channels=4, teacher_channels=6))
    loss = MODELS.build(dict(type='mmkd.MGDLoss', alpha_mgd=1e-5))
    assert isinstance(conn, MGDConnector) and isinstance(loss, MGDLoss)
