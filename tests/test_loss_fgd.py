"""FGDLoss against a per-image, per-box re-computation of yzd-v/FGD's ``FeatureLoss``."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmkd.models.losses.fgd import FGDLoss, fgd_masks
from oracles import fgd_masks_oracle, fgd_oracle, random_boxes, randomise_parameters, rel_err

TOL = 1e-5
TERMS = ('fg', 'bg', 'mask', 'global')


def make_batch(num_boxes=(5, 3), pad_hw=(96, 160), img_hws=((90, 150), (96, 128)), seed=0):
    gen = torch.Generator().manual_seed(seed)
    insts, metas = [], []
    for num, img_hw in zip(num_boxes, img_hws):
        boxes = random_boxes(num, img_hw[0], img_hw[1], gen)
        insts.append(InstanceData(bboxes=boxes, labels=torch.zeros(num, dtype=torch.long)))
        metas.append(dict(img_shape=img_hw, batch_input_shape=pad_hw, pad_shape=pad_hw))
    return insts, metas


def randomise(module, seed=1):
    """Random parameters everywhere (the zero-init GcBlock conv would hide gradients)."""
    return randomise_parameters(module, seed, std=0.2)


def features(n, cs, ct, h, w, seed=2, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(n, cs, h, w, generator=gen).to(dtype).requires_grad_()
    T = torch.randn(n, ct, h, w, generator=gen).to(dtype)
    return S, T


def compare(loss, S, T, insts, metas, **oracle_kw):
    """Every term: value and gradients (student input and every parameter) vs the oracle."""
    out = loss(S, T, insts, metas)
    params = dict(loss.named_parameters())
    ref = fgd_oracle(S.float(), T.float(), [i.bboxes for i in insts], metas, params,
                     temp=loss.temp, alpha=loss.alpha_fgd, beta=loss.beta_fgd,
                     gamma=loss.gamma_fgd, lam=loss.lambda_fgd, box_scale=loss.box_scale,
                     **oracle_kw)
    leaves = [S] + list(params.values())
    for key in TERMS:
        assert out[key].dtype == torch.float32
        assert rel_err(out[key], ref[key]) < TOL, (key, out[key], ref[key])
        grads = torch.autograd.grad(out[key], leaves, retain_graph=True, allow_unused=True)
        grads_ref = torch.autograd.grad(ref[key], leaves, retain_graph=True, allow_unused=True)
        scale = max(g.abs().max().item() for g in grads_ref if g is not None)
        for leaf_name, g, g_ref in zip(['S'] + list(params), grads, grads_ref):
            if g_ref is None or g_ref.abs().max() <= 1e-6 * scale:
                # analytically zero (unused, or a softmax-invariant bias): rounding noise only
                assert g is None or g.abs().max() <= 1e-6 * scale, (key, leaf_name)
                continue
            # a gradient w.r.t. an fp16/bf16 input is rounded to that dtype
            tol = TOL if g.dtype == torch.float32 else max(TOL, 2 * torch.finfo(g.dtype).eps)
            assert rel_err(g, g_ref) < tol, (key, leaf_name, rel_err(g, g_ref))
    return out, ref


@pytest.mark.parametrize('box_scale', ['padded', 'img_shape'])
def test_matches_official(box_scale):
    insts, metas = make_batch()
    loss = randomise(FGDLoss(8, 8, box_scale=box_scale))
    S, T = features(2, 8, 8, 12, 20)
    out, ref = compare(loss, S, T, insts, metas)
    assert all(out[k] > 0 for k in TERMS)


def test_default_hyper_parameters():
    loss = FGDLoss(256, 256)
    assert (loss.temp, loss.alpha_fgd, loss.beta_fgd, loss.gamma_fgd, loss.lambda_fgd) == \
        (0.5, 1e-3, 5e-4, 1e-3, 5e-6)
    assert loss.align is None and loss.box_scale == 'padded'
    # GcBlock init: the last conv is zero, so the block starts as the identity
    x = torch.randn(1, 256, 3, 4)
    assert torch.equal(loss.gc_s(x), x)


def test_padded_and_img_shape_agree_without_padding():
    insts, metas = make_batch(img_hws=((96, 160), (96, 160)))
    S, T = features(2, 8, 8, 12, 20)
    a = FGDLoss(8, 8, box_scale='padded')
    b = FGDLoss(8, 8, box_scale='img_shape')
    b.load_state_dict(a.state_dict())
    out_a, out_b = a(S, T, insts, metas), b(S, T, insts, metas)
    for k in TERMS:
        assert torch.equal(out_a[k], out_b[k])


def test_padding_changes_masks():
    insts, metas = make_batch()
    fg_pad, _ = fgd_masks(insts, metas, (12, 20), 'padded')
    fg_img, _ = fgd_masks(insts, metas, (12, 20), 'img_shape')
    assert not torch.equal(fg_pad, fg_img)


@pytest.mark.parametrize('box_scale', ['padded', 'img_shape'])
@pytest.mark.parametrize('hw', [(12, 20), (1, 1), (3, 7), (25, 42)])
def test_masks_match_official_rules(box_scale, hw):
    gen = torch.Generator().manual_seed(3)
    insts, metas = make_batch(num_boxes=(40, 17), seed=4)
    # integer-aligned boxes hit the floor/ceil boundaries exactly, boxes crossing the border
    extra = torch.tensor([[0., 0., 8., 8.], [8., 16., 24., 40.], [-12., -5., 30., 20.],
                          [140., 80., 175., 120.], [-30., -30., -2., -1.], [50., 50., 50., 50.]])
    insts[0] = InstanceData(bboxes=torch.cat([insts[0].bboxes, extra,
                                              random_boxes(5, 90, 150, gen)]))
    key = 'batch_input_shape' if box_scale == 'padded' else 'img_shape'
    fg, bg = fgd_masks(insts, metas, hw, box_scale)
    fg_ref, bg_ref = fgd_masks_oracle([i.bboxes for i in insts], metas, 2, hw[0], hw[1], key)
    assert torch.equal(fg, fg_ref)
    assert torch.allclose(bg, bg_ref, rtol=1e-6, atol=0)


def test_images_without_boxes():
    insts, metas = make_batch(num_boxes=(4, 0))
    loss = randomise(FGDLoss(8, 8))
    S, T = features(2, 8, 8, 12, 20)
    compare(loss, S, T, insts, metas)
    # a batch with no box at all: no foreground term, background covers everything
    insts, metas = make_batch(num_boxes=(0, 0))
    out, _ = compare(loss, S, T, insts, metas)
    assert out['fg'] == 0 and out['bg'] > 0


def test_boxes_partly_outside_the_image():
    insts, metas = make_batch()
    insts[0] = InstanceData(bboxes=torch.tensor([[-20., -10., 40., 30.], [120., 70., 200., 130.],
                                                 [-5., 60., 10., 200.]]))
    loss = randomise(FGDLoss(8, 8))
    S, T = features(2, 8, 8, 12, 20)
    for box_scale in ('padded', 'img_shape'):
        loss.box_scale = box_scale
        compare(loss, S, T, insts, metas)


def test_box_covering_whole_map_has_no_background():
    insts = [InstanceData(bboxes=torch.tensor([[0., 0., 160., 96.]]))]
    metas = [dict(img_shape=(96, 160), batch_input_shape=(96, 160))]
    loss = randomise(FGDLoss(8, 8))
    S, T = features(1, 8, 8, 12, 20)
    out, _ = compare(loss, S, T, insts, metas)
    assert out['bg'] == 0


@pytest.mark.parametrize('hw', [(1, 1), (1, 3), (2, 1)])
def test_tiny_levels(hw):
    insts, metas = make_batch()
    loss = randomise(FGDLoss(8, 8))
    S, T = features(2, 8, 8, *hw)
    compare(loss, S, T, insts, metas)


def test_batch_of_one():
    insts, metas = make_batch(num_boxes=(6, ), img_hws=((90, 150), ))
    loss = randomise(FGDLoss(8, 8))
    S, T = features(1, 8, 8, 12, 20)
    compare(loss, S, T, insts, metas)


def test_student_channels_differ():
    insts, metas = make_batch()
    loss = randomise(FGDLoss(6, 8))
    assert loss.align is not None
    S, T = features(2, 6, 8, 12, 20)
    compare(loss, S, T, insts, metas)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_compute_in_fp32(dtype):
    insts, metas = make_batch()
    loss = randomise(FGDLoss(8, 8))
    S, T = features(2, 8, 8, 12, 20, dtype=dtype)
    out = loss(S, T, insts, metas)
    S32 = S.detach().float().requires_grad_()
    out32 = loss(S32, T.float(), insts, metas)
    for k in TERMS:
        assert out[k].dtype == torch.float32
        assert rel_err(out[k], out32[k]) < TOL
    compare(loss, S, T, insts, metas)
    grad = torch.autograd.grad(sum(out.values()), S)[0]
    assert grad.dtype == dtype and torch.isfinite(grad).all()


def test_autocast_bf16_returns_fp32():
    insts, metas = make_batch()
    loss = randomise(FGDLoss(6, 8))
    S, T = features(2, 6, 8, 12, 20)
    ref = loss(S, T, insts, metas)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(S, T, insts, metas)
    for k in TERMS:
        assert out[k].dtype == torch.float32
        assert torch.equal(out[k], ref[k])


def test_horizontal_boxes_input():
    boxes_mod = pytest.importorskip('mmdet.structures.bbox')
    insts, metas = make_batch()
    wrapped = [InstanceData(bboxes=boxes_mod.HorizontalBoxes(i.bboxes), labels=i.labels)
               for i in insts]
    loss = randomise(FGDLoss(8, 8))
    S, T = features(2, 8, 8, 12, 20)
    a, b = loss(S, T, insts, metas), loss(S, T, wrapped, metas)
    for k in TERMS:
        assert torch.equal(a[k], b[k])


def test_clear_errors():
    insts, metas = make_batch()
    loss = FGDLoss(8, 8)
    S, T = features(2, 6, 8, 12, 20)
    with pytest.raises(ValueError, match=r'\(2, 6, 12, 20\).*\(2, 8, 12, 20\)'):
        loss(S, T, insts, metas)
    S, T = features(2, 8, 8, 12, 20)
    with pytest.raises(ValueError, match='spatial'):
        loss(S, T[:, :, :6], insts, metas)
    with pytest.raises(TypeError, match='one level'):
        loss((S, ), (T, ), insts, metas)
    with pytest.raises(ValueError, match='box_scale'):
        FGDLoss(8, 8, box_scale='pad')


def test_builds_from_registry():
    from mmkd.registry import MODELS
    loss = MODELS.build(dict(type='mmkd.FGDLoss', student_channels=8, teacher_channels=8))
    assert isinstance(loss, FGDLoss)
