"""LD (Main LD, Main KD, VLR LD) against per-row / per-anchor re-computations.

Reference formula (HikariTJU/LD kd_loss.py L10-36, ld_head.py L116-282):
  kl_i = T^2 * mean_j pT_ij (log pT_ij - log pS_ij),  p = softmax(z / T)
  Main LD = 0.25 * sum_pos sum_edges s_i kl_ie / 4   (s_i = max sigmoid student score)
  Main KD = 10 * sum_pos kl_i(T=2, over classes) / #pos per level
  VLR LD  = 0.25 * sum_vlr sum_edges v_i kl_ie / 16
"""
import math

import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.losses import KDLoss, LDLoss
from oracles import assert_close_rel as close
from oracles import gfl_ld_oracle, kd_oracle


def compare(module, S, T, tau, rtol=1e-5, **kw):
    S1 = S.clone().float().requires_grad_()
    out = module(S1, T.float(), **kw)
    out.backward()
    S2 = S.clone().double().requires_grad_()
    kw64 = {k: (v.double() if torch.is_tensor(v) else v) for k, v in kw.items()}
    ref = module.loss_weight * kd_oracle(S2, T.double(), tau, over=module.reduction_over_logits,
                                         **kw64)
    ref.backward()
    close(out, ref, rtol)
    close(S1.grad, S2.grad, rtol)
    return out


@pytest.mark.parametrize('over', ['mean', 'sum'])
def test_ld_loss_matches_reference(over):
    gen = torch.Generator().manual_seed(0)
    S, T = torch.randn(12, 17, generator=gen) * 3, torch.randn(12, 17, generator=gen) * 3
    w = torch.rand(12, generator=gen)
    loss = LDLoss(tau=10.0, loss_weight=0.25, reduction_over_bins=over)
    compare(loss, S, T, 10.0, weight=w, avg_factor=4.0)
    compare(loss, S, T, 10.0)  # no weight, no avg_factor: mean over rows
    compare(LDLoss(tau=1.0, loss_weight=1.0, reduction_over_bins=over), S, T, 1.0, weight=w)


def test_ld_sum_is_bins_times_mean_and_defaults():
    gen = torch.Generator().manual_seed(1)
    S, T = torch.randn(5, 17, generator=gen), torch.randn(5, 17, generator=gen)
    m, s = LDLoss(), LDLoss(reduction_over_bins='sum')
    assert (m.tau, m.loss_weight) == (10.0, 0.25)
    torch.testing.assert_close(s(S, T), 17 * m(S, T))


def test_ld_teacher_detached_and_batch_of_one():
    gen = torch.Generator().manual_seed(2)
    S = torch.randn(1, 17, generator=gen, requires_grad=True)
    T = torch.randn(1, 17, generator=gen, requires_grad=True)
    LDLoss()(S, T, weight=torch.ones(1), avg_factor=4.0).backward()
    assert T.grad is None and S.grad is not None
    compare(LDLoss(), S.detach(), T.detach(), 10.0, weight=torch.tensor([0.7]), avg_factor=4.0)


def test_ld_empty_rows_zero_with_graph():
    S = torch.zeros(0, 17, requires_grad=True)
    out = LDLoss()(S, torch.zeros(0, 17), weight=torch.zeros(0), avg_factor=4.0)
    assert out.item() == 0 and out.requires_grad
    out.backward()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_ld_half_inputs_compute_in_fp32(dtype):
    gen = torch.Generator().manual_seed(3)
    S = (torch.randn(8, 17, generator=gen) * 4).to(dtype)
    T = (torch.randn(8, 17, generator=gen) * 4).to(dtype)
    w = torch.rand(8, generator=gen).to(dtype)
    out = LDLoss()(S, T, weight=w, avg_factor=4.0)
    assert out.dtype == torch.float32
    ref = LDLoss()(S.float(), T.float(), weight=w.float(), avg_factor=4.0)
    torch.testing.assert_close(out, ref)


def test_ld_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r'\(3, 17\).*\(3, 9\)'):
        LDLoss()(torch.randn(3, 17), torch.randn(3, 9))
    with pytest.raises(ValueError, match='one value per row'):
        LDLoss()(torch.randn(3, 17), torch.randn(3, 17), weight=torch.ones(4))


def test_kd_loss_matches_reference():
    gen = torch.Generator().manual_seed(4)
    S, T = torch.randn(7, 80, generator=gen) * 2, torch.randn(7, 80, generator=gen) * 2
    kd = KDLoss()
    assert (kd.tau, kd.loss_weight) == (2.0, 10.0)
    compare(kd, S, T, 2.0, weight=torch.ones(7), avg_factor=7)
    compare(KDLoss(reduction_over_classes='sum'), S, T, 2.0, avg_factor=3)
    with pytest.raises(ValueError, match=r'\(7, 80\).*\(7, 81\)'):
        kd(S, torch.randn(7, 81))


# --------------------------------------------------------------------------------------------
# GFLLDLoss: the whole per-batch LD on GFL head outputs (needs mmdet)
# --------------------------------------------------------------------------------------------
NUM_CLASSES, REG_MAX = 3, 4
STRIDES = [8, 16, 32]
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
               strides=STRIDES)


def make_batch(seed, num_imgs=2, pad=(128, 160), gts_per_img=(3, 2), dtype=torch.float32):
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    sizes = [(math.ceil(pad[0] / s), math.ceil(pad[1] / s)) for s in STRIDES]

    def head():
        cls = [torch.randn(num_imgs, NUM_CLASSES, h, w, generator=gen) * 2 for h, w in sizes]
        reg = [torch.randn(num_imgs, 4 * (REG_MAX + 1), h, w, generator=gen) * 2 for h, w in sizes]
        return [c.to(dtype) for c in cls], [r.to(dtype) for r in reg]

    preds_S, preds_T = head(), head()
    gts, metas = [], []
    for i in range(num_imgs):
        # image 2 is smaller: its own pad_shape leaves invalid anchors in the batch padding
        img_h, img_w = (pad[0], pad[1]) if i == 0 else (pad[0] - 20, pad[1] - 36)
        img_pad = (pad[0], pad[1]) if i == 0 else (pad[0] - 16, pad[1] - 32)
        n = gts_per_img[i]
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([img_w * 0.6, img_h * 0.6])
        wh = torch.rand(n, 2, generator=gen) * torch.tensor([img_w * 0.8, img_h * 0.8]) + 8
        boxes = torch.cat([xy, torch.min(xy + wh, torch.tensor([img_w, img_h]) - 1.)], 1)
        if i == 0 and n:  # a large box: positives on the second level too
            boxes[-1] = torch.tensor([10.5, 12.5, img_w - 21., img_h - 9.])
        if i == 1 and n:  # a box at the corner of the smaller image: anchors in the padding
            boxes[-1] = torch.tensor([img_w - 30.5, img_h - 25.5, img_w - 1., img_h - 1.])
        labels = torch.randint(0, NUM_CLASSES, (n, ), generator=gen)
        gts.append(InstanceData(bboxes=boxes, labels=labels))
        metas.append(dict(img_shape=(img_h, img_w), pad_shape=img_pad, batch_input_shape=pad))
    return preds_S, preds_T, gts, metas


def build_gfl_ld(**kw):
    from mmkd.models.losses import GFLLDLoss
    return GFLLDLoss(num_classes=NUM_CLASSES, reg_max=REG_MAX, anchor_generator=ANCHORS, **kw)


def leaves(preds, dtype):
    return tuple([t.detach().clone().to(dtype).requires_grad_() for t in part] for part in preds)


def test_gfl_ld_matches_per_anchor_reference():
    preds_S, preds_T, gts, metas = make_batch(0)
    ours_in, ref_in = leaves(preds_S, torch.float32), leaves(preds_S, torch.float64)
    ref_T = tuple([t.double() for t in part] for part in preds_T)
    ours = build_gfl_ld()(ours_in, preds_T, gts, metas)
    ref = gfl_ld_oracle(ref_in, ref_T, gts, metas, STRIDES, REG_MAX)
    for key in ('main_ld', 'main_kd', 'vlr_ld'):
        assert ours[key].dtype == torch.float32 and ours[key].item() > 0, key
        close(ours[key], ref[key])
    sum(ours.values()).backward()
    sum(ref.values()).backward()
    for part_o, part_r in zip(ours_in, ref_in):
        for go, gr in zip(part_o, part_r):  # a level the reference never touched has no grad
            close(go.grad, gr.grad if gr.grad is not None else torch.zeros_like(gr))


def test_gfl_ld_switches_levels_and_teacher_detached():
    preds_S, preds_T, gts, metas = make_batch(1)
    full = build_gfl_ld()(preds_S, preds_T, gts, metas)
    off = build_gfl_ld(with_main_kd=False, with_vlr=False)(preds_S, preds_T, gts, metas)
    torch.testing.assert_close(off['main_ld'], full['main_ld'])
    assert off['main_kd'].item() == 0 and off['vlr_ld'].item() == 0
    levels = build_gfl_ld()(preds_S, preds_T, gts, metas, return_levels=True)
    assert all(len(v) == len(STRIDES) for v in levels.values())
    torch.testing.assert_close(sum(levels['vlr_ld']), full['vlr_ld'])
    T_in = leaves(preds_T, torch.float32)
    build_gfl_ld()(leaves(preds_S, torch.float32), T_in, gts, metas)['main_ld'].backward()
    assert all(t.grad is None for part in T_in for t in part)


def test_gfl_ld_no_gt_and_batch_of_one():
    from mmengine.structures import InstanceData
    preds_S, preds_T, gts, metas = make_batch(2, num_imgs=1, gts_per_img=(0, ))
    S_in = leaves(preds_S, torch.float32)
    out = build_gfl_ld()(S_in, preds_T, [InstanceData(bboxes=torch.zeros(0, 4),
                                                      labels=torch.zeros(0, dtype=torch.long))],
                         metas)
    assert all(v.item() == 0 for v in out.values())
    sum(out.values()).backward()  # the graph is kept
    preds_S, preds_T, gts, metas = make_batch(3, num_imgs=1, gts_per_img=(2, ))
    ours = build_gfl_ld()(preds_S, preds_T, gts, metas)
    ref = gfl_ld_oracle(preds_S, preds_T, gts, metas, STRIDES, REG_MAX)
    for key in ours:
        close(ours[key], ref[key])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_gfl_ld_half_inputs(dtype):
    preds_S, preds_T, gts, metas = make_batch(4, dtype=dtype)
    out = build_gfl_ld()(preds_S, preds_T, gts, metas)
    up = lambda p: tuple([t.float() for t in part] for part in p)  # noqa: E731
    ref = build_gfl_ld()(up(preds_S), up(preds_T), gts, metas)
    for key in out:
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], ref[key])


def test_gfl_ld_shape_errors():
    preds_S, preds_T, gts, metas = make_batch(5)
    bad_T = (preds_T[0], [r[:, :-1] for r in preds_T[1]])
    with pytest.raises(ValueError, match='reg_max'):
        build_gfl_ld()(preds_S, bad_T, gts, metas)
    bad_T = ([c[:, :-1] for c in preds_T[0]], preds_T[1])
    with pytest.raises(ValueError, match='num_classes'):
        build_gfl_ld()(preds_S, bad_T, gts, metas)


def test_gfl_main_ld_equals_mmdet_ldhead():
    """With KD and VLR off, Main LD equals mmdet 3.3's own LDHead ``loss_ld`` (values, grads)."""
    from mmdet.models.dense_heads import LDHead
    from mmengine.config import ConfigDict
    head = LDHead(
        num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1, reg_max=REG_MAX,
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        anchor_generator=ANCHORS,
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25, T=10),
        train_cfg=ConfigDict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                             pos_weight=-1, debug=False))
    preds_S, preds_T, gts, metas = make_batch(6)
    S_mm, S_ours = leaves(preds_S, torch.float32), leaves(preds_S, torch.float32)
    mm = head.loss_by_feat(S_mm[0], S_mm[1], gts, metas, soft_targets=preds_T[1])
    mm_ld = sum(mm['loss_ld'])
    ours = build_gfl_ld(with_main_kd=False, with_vlr=False)(S_ours, preds_T, gts, metas)
    assert mm_ld.item() > 0
    close(ours['main_ld'], mm_ld)
    mm_ld.backward()
    ours['main_ld'].backward()
    for a, b in zip(S_mm[1], S_ours[1]):
        close(b.grad, a.grad)


@pytest.mark.parametrize('scope', [None, 'mmkd', 'mmrazor'])
def test_gfl_ld_builds_from_config_in_any_scope(scope):
    """The distiller builds losses through mmrazor's registry, under the config's scope."""
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        loss = MODELS.build(dict(type='mmkd.GFLLDLoss', num_classes=NUM_CLASSES, reg_max=REG_MAX,
                                 anchor_generator=ANCHORS,
                                 loss_kd=dict(type='mmkd.KDLoss', tau=8.0, loss_weight=1.0)))
    assert type(loss.assigner).__name__ == 'ATSSAssigner' and loss.loss_kd.tau == 8.0
    preds_S, preds_T, gts, metas = make_batch(7)
    assert all(torch.isfinite(v) for v in loss(preds_S, preds_T, gts, metas).values())
