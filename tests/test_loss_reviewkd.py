"""ABFConnector + HCLLoss against ReviewKD's ``Detection/model/kd_trans.py``."""
import pytest
import torch

from mmkd.models.connectors.abf import ABFConnector
from mmkd.models.losses.reviewkd import HCLLoss
from oracles import abf_oracle, hcl_oracle, random_levels, randomise_parameters, rel_err

TOL = 1e-5
SHAPES = [(20, 24), (10, 12), (5, 6), (3, 3), (2, 2)]


def features(shapes=SHAPES, **kwargs):
    return random_levels(shapes, **kwargs)


def randomise(module, seed=1):
    return randomise_parameters(module, seed, std=0.3, vector_mean=1.0)


def compare(connector, loss, S, T):
    params = {k: v for k, v in connector.state_dict(keep_vars=True).items()}
    ref_feats = abf_oracle([s.float() for s in S], params)
    feats = connector(S)
    assert isinstance(feats, tuple) and len(feats) == len(S)
    for f, r in zip(feats, ref_feats):
        assert f.shape == r.shape and rel_err(f, r) < TOL
    out = loss(feats, T)
    ref = hcl_oracle(ref_feats, [t.float() for t in T], loss.loss_weight)
    assert out.dtype == torch.float32 and out.dim() == 0
    assert rel_err(out, ref) < TOL, (out, ref)
    leaves = list(S) + list(connector.parameters())
    for i, (g, g_ref) in enumerate(zip(torch.autograd.grad(out, leaves),
                                       torch.autograd.grad(ref, leaves))):
        # a gradient w.r.t. an fp16/bf16 input is rounded to that dtype
        tol = max(TOL, 2 * torch.finfo(g.dtype).eps) if g.dtype != torch.float32 else TOL
        assert rel_err(g, g_ref) < tol, (i, rel_err(g, g_ref))
    return out


def test_matches_official():
    S, T = features()
    out = compare(randomise(ABFConnector(4, 4, mid_channels=6)), HCLLoss(1.2), S, T)
    assert out > 0


def test_official_init_and_structure():
    conn = ABFConnector()
    assert len(conn.abfs) == 5
    assert [abf.att_conv is None for abf in conn.abfs] == [False] * 4 + [True]
    conv = conn.abfs[0].conv1[0]
    assert conv.bias is None and conn.abfs[0].conv2[0].kernel_size == (3, 3)


def test_hcl_alone_matches_official():
    S, T = features(shapes=[(9, 11), (4, 4), (3, 5), (2, 7), (1, 1)])
    loss = HCLLoss(loss_weight=0.7)
    out = loss(S, T)
    ref = hcl_oracle(S, T, 0.7)
    assert rel_err(out, ref) < TOL
    for g, g_ref in zip(torch.autograd.grad(out, S), torch.autograd.grad(ref, S)):
        assert rel_err(g, g_ref) < TOL


def test_tiny_levels():
    # batch 4: with batch 2 a 1 x 1 level gives BatchNorm two values per channel and its
    # backward cancels to ~1e-5 relative in fp32 (in the oracle as well)
    S, T = features(shapes=[(4, 4), (2, 2), (1, 1)], n=4)
    compare(randomise(ABFConnector(4, 4, 4, num_levels=3)), HCLLoss(), S, T)


def test_single_level():
    S, T = features(shapes=[(6, 7)])
    compare(randomise(ABFConnector(4, 4, 4, num_levels=1)), HCLLoss(), S, T)


def test_batch_of_one():
    S, T = features(n=1)
    compare(randomise(ABFConnector(4, 4, 3)), HCLLoss(), S, T)


def test_student_channels_differ():
    S, T = features(cs=3, ct=5)
    compare(randomise(ABFConnector(3, 5, 4)), HCLLoss(), S, T)
    # per-level channel lists
    S, T = features(shapes=SHAPES[:2], cs=3, ct=5)
    compare(randomise(ABFConnector([3, 3], [5, 5], 4)), HCLLoss(), S, T)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    S, T = features(dtype=dtype)
    out = compare(randomise(ABFConnector(4, 4, 4)), HCLLoss(), S, T)
    assert out.dtype == torch.float32


def test_autocast_bf16_loss_in_fp32():
    S, T = features()
    conn = randomise(ABFConnector(4, 4, 4))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = conn(S)
        out = HCLLoss()(feats, T)
    assert out.dtype == torch.float32
    assert rel_err(out, HCLLoss()(tuple(f.float() for f in feats), T)) < TOL
    out.backward()
    assert all(torch.isfinite(s.grad).all() for s in S)


def test_clear_errors():
    S, T = features(cs=3, ct=4)
    with pytest.raises(ValueError, match=r'level 0.*\(2, 3, 20, 24\).*\(2, 4, 20, 24\)'):
        HCLLoss()(S, T)
    with pytest.raises(ValueError, match='tuple of 5 levels'):
        ABFConnector(3, 4)(S[0])
    with pytest.raises(ValueError, match=r'level 0: expected N x 4 x H x W'):
        ABFConnector(4, 4)(S)


def test_builds_from_registry():
    from mmkd.registry import MODELS
    conn = MODELS.build(dict(type='mmkd.ABFConnector', in_channels=256, out_channels=256))
    loss = MODELS.build(dict(type='mmkd.HCLLoss', loss_weight=1.2))
    assert isinstance(conn, ABFConnector) and isinstance(loss, HCLLoss)
