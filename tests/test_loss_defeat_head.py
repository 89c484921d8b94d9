"""DeFeat's decoupled RoI classification KD against a per-RoI re-computation.

Reference (ggjy/DeFeat.pytorch mmdet/apis/train.py L88-103, L228-297): for fg RoIs (label < K)
and bg RoIs (label == K) separately, sum_{rois, classes} KL(softmax(t/T) || softmax(s/T)) / #rois
* T^2; weights head_cls_w / head_cls_back_w; one T for both.
"""
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.losses import DeFeatHeadLoss
from oracles import assert_close_rel as close
from oracles import defeat_head_oracle


def logits(seed, n=20, k=6, n_bg=12):
    gen = torch.Generator().manual_seed(seed)
    S, T = torch.randn(n, k, generator=gen) * 3, torch.randn(n, k, generator=gen) * 3
    labels = torch.randint(0, k - 1, (n, ), generator=gen)
    labels[:n_bg] = k - 1
    return S, T, labels


def check(loss, S, T, labels):
    S1 = S.clone().float().requires_grad_()
    fg, bg = loss.forward_parts(S1, T, labels)
    (fg + bg).backward()
    S2 = S.clone().double().requires_grad_()
    rfg, rbg = defeat_head_oracle(S2, T.double(), labels, loss.tau, loss.loss_weight_fg,
                                  loss.loss_weight_bg)
    (rfg + rbg).backward()  # at least one of the two sets is non-empty in these tests
    close(fg, rfg)
    close(bg, rbg)
    close(loss(S, T, labels), rfg + rbg)
    close(S1.grad, S2.grad)
    return fg, bg, S1.grad


@pytest.mark.parametrize('tau,w_fg,w_bg', [(1.0, 2.0, 2.0), (3.0, 4.0, 16.0)])
def test_defeat_head_matches_reference(tau, w_fg, w_bg):
    S, T, labels = logits(0)
    fg, bg, _ = check(DeFeatHeadLoss(tau=tau, loss_weight_fg=w_fg, loss_weight_bg=w_bg),
                      S, T, labels)
    assert fg.item() > 0 and bg.item() > 0


def test_defeat_head_only_background_rois():
    S, T, labels = logits(1, n=8, n_bg=8)
    fg, bg, grad = check(DeFeatHeadLoss(), S, T, labels)
    assert fg.item() == 0 and fg.requires_grad and bg.item() > 0


def test_defeat_head_background_is_last_logit_not_labels_max():
    """Official uses labels.max() as background; with no bg RoI in the batch that would turn the
    largest fg class into background. Here background is always K = logits.shape[1] - 1."""
    S, T, labels = logits(2, n=10, n_bg=0)
    fg, bg, _ = check(DeFeatHeadLoss(), S, T, labels)
    assert bg.item() == 0 and fg.item() > 0


def test_defeat_head_batch_of_one_no_rois_and_errors():
    S, T, labels = logits(3, n=1, n_bg=0)
    check(DeFeatHeadLoss(), S, T, labels)
    S0 = torch.zeros(0, 6, requires_grad=True)
    out = DeFeatHeadLoss()(S0, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long))
    assert out.item() == 0 and out.requires_grad
    out.backward()
    S, T, labels = logits(4)
    with pytest.raises(ValueError, match=r'\(20, 6\).*\(20, 7\)'):
        DeFeatHeadLoss()(S, torch.randn(20, 7), labels)
    with pytest.raises(ValueError, match='labels for 20 RoIs'):
        DeFeatHeadLoss()(S, T, labels[:5])


def test_defeat_head_teacher_detached():
    S, T, labels = logits(5)
    S.requires_grad_()
    T.requires_grad_()
    DeFeatHeadLoss()(S, T, labels).backward()
    assert T.grad is None and S.grad is not None


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_defeat_head_half_inputs_compute_in_fp32(dtype):
    S, T, labels = logits(6)
    S, T = (S * 3).to(dtype), (T * 3).to(dtype)
    out = DeFeatHeadLoss()(S, T, labels)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, DeFeatHeadLoss()(S.float(), T.float(), labels))
