"""PKD against an independent per-channel Pearson computation and against mmrazor's PKDLoss."""
import numpy as np
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.losses import PKDLoss
from oracles import pkd_oracle


def test_pkd_matches_oracle_on_levels():
    g = torch.Generator().manual_seed(0)
    levels = [(2, 8, 10, 12), (2, 8, 5, 6), (2, 8, 1, 1)]
    S = [torch.randn(*s, generator=g) * 3 + 1 for s in levels]
    T = [torch.randn(*s, generator=g) + 0.5 * S[i] for i, s in enumerate(levels)]
    loss = PKDLoss(loss_weight=6)(S, T)
    expected = 6 * sum(pkd_oracle(s, t) for s, t in zip(S, T))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pkd_is_one_minus_pearson():
    # with the 1e-6 negligible, the loss per level equals (1 - mean_c r_c) * (M-1)/M
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 4, 6, 6, generator=g)
    t = torch.randn(2, 4, 6, 6, generator=g) + s
    m = 2 * 36
    r = np.mean([np.corrcoef(s[:, c].ravel(), t[:, c].ravel())[0, 1] for c in range(4)])
    assert PKDLoss()(s, t).item() == pytest.approx((1 - r) * (m - 1) / m, rel=1e-4)


def test_pkd_values_and_gradients_match_mmrazor():
    from mmrazor.models.losses import PKDLoss as RazorPKD
    g = torch.Generator().manual_seed(2)
    S = [torch.randn(2, 16, 12, 16, generator=g, dtype=torch.float64) for _ in range(3)]
    T = [torch.randn(2, 16, 12, 16, generator=g, dtype=torch.float64) for _ in range(3)]
    S1 = [s.clone().float().requires_grad_() for s in S]
    S2 = [s.clone().float().requires_grad_() for s in S]
    ours = PKDLoss(loss_weight=10)(S1, [t.float() for t in T])
    theirs = RazorPKD(loss_weight=10)(tuple(S2), tuple(t.float() for t in T))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    ours.backward()
    theirs.backward()
    for a, b in zip(S1, S2):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_pkd_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)

    def f(x):
        return PKDLoss()(x, t).double()

    # PKDLoss computes in fp32; compare its analytic gradient with central differences
    f(s).backward()
    eps = 1e-3
    num = torch.zeros_like(s)
    for idx in np.ndindex(*s.shape):
        d = torch.zeros_like(s)
        d[idx] = eps
        num[idx] = (pkd_oracle(s + d, t) - pkd_oracle(s - d, t)) / (2 * eps)
    torch.testing.assert_close(s.grad, num, rtol=2e-3, atol=1e-5)


def test_pkd_resizes_student_to_teacher_whole_shape():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(2, 4, 8, 10, generator=g)
    t = torch.randn(2, 4, 8, 5, generator=g)  # same height, different width: mmrazor misses it
    s_resized = torch.nn.functional.interpolate(s, (8, 5), mode='bilinear')
    assert PKDLoss()(s, t).item() == pytest.approx(
        pkd_oracle(s_resized, t), rel=1e-5)


def test_pkd_half_precision_inputs_compute_in_fp32():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 4, 6, 6, generator=g)
    t = torch.randn(2, 4, 6, 6, generator=g)
    for dtype in (torch.float16, torch.bfloat16):
        loss = PKDLoss()(s.to(dtype), t.to(dtype))
        assert loss.dtype == torch.float32
        ref = pkd_oracle(s.to(dtype).float(), t.to(dtype).float())
        assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_pkd_refuses_channel_mismatch_and_single_value_levels():
    with pytest.raises(ValueError, match=r'\(2, 4, 6, 6\).*\(2, 8, 6, 6\).*connector'):
        PKDLoss()(torch.randn(2, 4, 6, 6), torch.randn(2, 8, 6, 6))
    with pytest.raises(ValueError, match='at least 2 values per channel'):
        PKDLoss()(torch.randn(1, 4, 1, 1), torch.randn(1, 4, 1, 1))
