"""DKD against a per-RoI re-computation of the paper's TCKD / NCKD and against mmrazor.

Reference (mdistiller DKD.py L8-51): b = [p_gt, sum_{k != gt} p_k]; TCKD = KL(b_T || b_S);
NCKD = KL over the non-target classes renormalised; both * T^2, summed over RoIs / #RoIs.
"""
import warnings

import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.losses import DKDLoss
from oracles import assert_close_rel as close
from oracles import dkd_oracle


def check(loss, S, T, labels, tau, alpha, beta):
    S1 = S.clone().float().requires_grad_()
    out = loss(S1, T, labels)
    out.backward()
    S2 = S.clone().double().requires_grad_()
    ref = loss.loss_weight * dkd_oracle(S2, T.double(), labels, tau, alpha, beta)
    ref.backward()
    assert out.dtype == torch.float32
    close(out, ref)
    close(S1.grad, S2.grad)


def logits(seed, n=16, k=9, scale=3.):
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(n, k, generator=gen) * scale
    T = torch.randn(n, k, generator=gen) * scale
    labels = torch.randint(0, k, (n, ), generator=gen)
    labels[: n // 2] = k - 1  # many background RoIs, as after RoI sampling
    return S, T, labels


@pytest.mark.parametrize('tau,alpha,beta', [(1.0, 1.0, 0.25), (4.0, 1.0, 8.0), (2.0, 0.5, 1.0)])
def test_dkd_matches_reference(tau, alpha, beta):
    S, T, labels = logits(0)
    check(DKDLoss(tau=tau, alpha=alpha, beta=beta, loss_weight=1.5), S, T, labels, tau, alpha, beta)


def test_dkd_defaults_are_detection_defaults():
    loss = DKDLoss()
    assert (loss.tau, loss.alpha, loss.beta, loss.loss_weight) == (1.0, 1.0, 0.25, 1.0)


def test_dkd_equals_mmrazor():
    from mmrazor.models.losses import DKDLoss as RazorDKD
    S, T, labels = logits(1, n=32, k=81)
    for tau, alpha, beta in [(1.0, 1.0, 0.25), (4.0, 1.0, 8.0)]:
        ours = DKDLoss(tau=tau, alpha=alpha, beta=beta, loss_weight=2.0)(S, T, labels)
        with warnings.catch_warnings():  # mmrazor passes the deprecated size_average
            warnings.simplefilter('ignore')
            ref = RazorDKD(tau=tau, alpha=alpha, beta=beta, reduction='batchmean',
                           loss_weight=2.0)(S, T, labels)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)


def test_dkd_batch_of_one_and_only_background():
    S, T, labels = logits(2, n=1)
    check(DKDLoss(), S, T, labels, 1.0, 1.0, 0.25)
    S, T, _ = logits(3)
    check(DKDLoss(tau=2.0), S, T, torch.full((16, ), 8), 2.0, 1.0, 0.25)


def test_dkd_no_rois_teacher_detached_and_errors():
    S = torch.zeros(0, 9, requires_grad=True)
    out = DKDLoss()(S, torch.zeros(0, 9), torch.zeros(0, dtype=torch.long))
    assert out.item() == 0 and out.requires_grad
    S, T, labels = logits(4)
    T.requires_grad_()
    DKDLoss()(S.requires_grad_(), T, labels).backward()
    assert T.grad is None
    with pytest.raises(ValueError, match=r'\(16, 9\).*\(16, 10\)'):
        DKDLoss()(S, torch.randn(16, 10), labels)
    with pytest.raises(ValueError, match='labels must lie'):
        DKDLoss()(S, T, torch.full((16, ), 9))
    with pytest.raises(ValueError, match='labels for 16 RoIs'):
        DKDLoss()(S, T, labels[:3])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_dkd_half_inputs_compute_in_fp32(dtype):
    S, T, labels = logits(5, scale=8.)
    S, T = S.to(dtype), T.to(dtype)
    out = DKDLoss(tau=1.0)(S, T, labels)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, DKDLoss(tau=1.0)(S.float(), T.float(), labels))
