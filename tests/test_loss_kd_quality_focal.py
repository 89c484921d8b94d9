"""KDQualityFocalLoss (CrossKD's cls KD, BCKD's binary KD) against a per-row re-computation.

Reference (TinyTigerPan/BCKD kd_loss.py L11-38, jbwang1997/CrossKD kd_loss.py L44-59):
  l_i = sum_c BCE(z^S_ic, sigmoid(z^T_ic)) * |sigmoid(z^S_ic) - sigmoid(z^T_ic)|^beta
  L = w * sum_i m_i l_i / (avg_factor + eps)     (mean over the N x C elements without one)
"""
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.losses import KDQualityFocalLoss
from oracles import assert_close_rel as close
from oracles import kd_quality_focal_oracle


def inputs(seed, n=9, c=5, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, c, generator=gen) * scale
    soft = torch.randn(n, c, generator=gen) * scale
    weight = torch.rand(n, generator=gen)
    weight[0] = 0.  # an ignored row
    return pred, soft, weight


def compare(loss, pred, soft, weight=None, avg_factor=None, rtol=1e-5):
    ours_in = pred.clone().float().requires_grad_()
    ref_in = pred.clone().double().requires_grad_()
    ours = loss(ours_in, soft.float(), weight=weight, avg_factor=avg_factor)
    ref = loss.loss_weight * kd_quality_focal_oracle(
        ref_in, soft.double(), loss.beta,
        None if weight is None else weight.double(), avg_factor)
    close(ours, ref, rtol)
    ours.backward()
    ref.backward()
    close(ours_in.grad, ref_in.grad, rtol)
    return ours


@pytest.mark.parametrize('beta', [1.0, 2.0])
def test_matches_reference_with_row_weights_and_avg_factor(beta):
    pred, soft, weight = inputs(0)
    out = compare(KDQualityFocalLoss(beta=beta, loss_weight=1.5), pred, soft, weight, 3.0)
    assert out.item() > 0


def test_without_avg_factor_is_the_mean_over_elements_and_bckd_form_is_c_times():
    pred, soft, weight = inputs(1)
    loss = KDQualityFocalLoss()
    compare(loss, pred, soft)  # no weight, no avg_factor: mean over N x C
    compare(loss, pred, soft, weight)
    # BCKD's NovelKDLoss sums a row over the classes first, so its plain mean (over the N
    # rows) is C times this one; with an avg_factor the two are the same number
    bckd_mean = kd_quality_focal_oracle(pred.double(), soft.double(), 1.0, None, pred.shape[0])
    close(loss(pred, soft) * pred.shape[1], bckd_mean)


def test_sum_and_none_reductions():
    pred, soft, weight = inputs(2)
    elementwise = KDQualityFocalLoss(reduction='none')(pred, soft, weight)
    assert elementwise.shape == pred.shape
    assert (elementwise[0] == 0).all()  # the ignored row
    total = KDQualityFocalLoss(reduction='sum')(pred, soft, weight)
    close(total, kd_quality_focal_oracle(pred.double(), soft.double(), 1.0, weight.double())
          * pred.numel())  # the oracle's mean over the N x C elements, times their number
    torch.testing.assert_close(elementwise.sum(), total)


def test_teacher_detached_zero_when_equal_and_empty_rows():
    pred, soft, weight = inputs(3)
    soft = soft.clone().requires_grad_()
    KDQualityFocalLoss()(pred.requires_grad_(), soft, weight, avg_factor=2.0).backward()
    assert soft.grad is None and pred.grad is not None
    same = KDQualityFocalLoss()(soft.detach(), soft.detach(), avg_factor=2.0)
    assert same.item() == 0  # the focal factor |p - t| is 0 where the student matches
    empty = torch.zeros(0, 5, requires_grad=True)
    out = KDQualityFocalLoss()(empty, torch.zeros(0, 5), torch.zeros(0), avg_factor=1.0)
    assert out.item() == 0 and out.requires_grad


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_fp32(dtype):
    pred, soft, weight = inputs(4)
    out = KDQualityFocalLoss()(pred.to(dtype), soft.to(dtype), weight.to(dtype), avg_factor=4.0)
    assert out.dtype == torch.float32
    ref = KDQualityFocalLoss()(pred.to(dtype).float(), soft.to(dtype).float(),
                               weight.to(dtype).float(), avg_factor=4.0)
    torch.testing.assert_close(out, ref)


def test_errors_name_the_problem():
    pred, soft, weight = inputs(5)
    with pytest.raises(ValueError, match=r'\(9, 5\) and \(9, 4\)'):
        KDQualityFocalLoss()(pred, soft[:, :4])
    with pytest.raises(ValueError, match='one value per row'):
        KDQualityFocalLoss()(pred, soft, weight[:3])
    with pytest.raises(ValueError, match='beta'):
        KDQualityFocalLoss(beta=-1)
    with pytest.raises(ValueError, match='reduction'):
        KDQualityFocalLoss(reduction='batchmean')


def test_builds_from_the_registry():
    from mmrazor.registry import MODELS
    loss = MODELS.build(dict(type='mmkd.KDQualityFocalLoss', beta=2.0, loss_weight=0.5))
    assert isinstance(loss, KDQualityFocalLoss) and (loss.beta, loss.loss_weight) == (2.0, 0.5)
    assert KDQualityFocalLoss.compares_class_logits
