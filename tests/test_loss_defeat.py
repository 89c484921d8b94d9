"""DeFeatLoss against a per-image, per-level, per-box re-computation of DeFeat's neck loss."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmkd.models.losses.defeat import DeFeatLoss, defeat_gt_masks, map_boxes_to_levels
from oracles import (defeat_masks_oracle, defeat_oracle, random_boxes, random_levels,
                     randomise_parameters, rel_err)

TOL = 1e-5
STRIDES = (4, 8, 16, 32, 64)


def level_shapes(pad_hw, strides=STRIDES):
    return [(-(-pad_hw[0] // s), -(-pad_hw[1] // s)) for s in strides]


def make_gt(num_boxes=(12, 7), img_hw=(700, 1000), seed=0, extra=None):
    gen = torch.Generator().manual_seed(seed)
    insts = []
    for i, num in enumerate(num_boxes):
        boxes = random_boxes(num, img_hw[0], img_hw[1], gen)
        if extra is not None and i == 0:
            boxes = torch.cat([boxes, extra])
        insts.append(InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long)))
    return insts


# boxes for every level (incl. clamping above the top level), partly outside, degenerate
EXTRA = torch.tensor([[10., 10., 30., 40.], [100., 100., 250., 260.], [0., 0., 400., 300.],
                      [0., 0., 1023., 767.], [-100., -100., 1100., 900.], [5., 5., 5., 60.],
                      [33., 12., 35., 13.], [1020., 700., 1030., 710.], [-50., 20., -10., 40.]])


def features(shapes, seed=1, **kwargs):
    return random_levels(shapes, seed=seed, **kwargs)


def randomise(loss, seed=2):
    return randomise_parameters(loss, seed, std=0.2)


def compare(loss, S, T, insts):
    out = loss(S, T, insts, None)
    params = dict(loss.named_parameters())
    ref = defeat_oracle([s.float() for s in S], [t.float() for t in T],
                        [i.bboxes for i in insts], params, loss.strides, loss.loss_weight_fg,
                        loss.loss_weight_bg)
    leaves = list(S) + list(params.values())
    for key in ('fg', 'bg'):
        assert out[key].dtype == torch.float32 and out[key].dim() == 0
        assert rel_err(out[key], ref[key]) < TOL, (key, out[key], ref[key])
        grads = torch.autograd.grad(out[key], leaves, retain_graph=True, allow_unused=True)
        grads_ref = torch.autograd.grad(ref[key], leaves, retain_graph=True, allow_unused=True)
        for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
            if g_ref is None or g_ref.abs().max() == 0:
                assert g is None or g.abs().max() == 0, (key, i)
                continue
            # a gradient w.r.t. an fp16/bf16 input is rounded to that dtype
            tol = TOL if g.dtype == torch.float32 else max(TOL, 2 * torch.finfo(g.dtype).eps)
            assert rel_err(g, g_ref) < tol, (key, i, rel_err(g, g_ref))
    return out, ref


def test_matches_official():
    insts = make_gt(extra=EXTRA)
    S, T = features(level_shapes((768, 1024)))
    out, _ = compare(randomise(DeFeatLoss(4, 4)), S, T, insts)
    assert out['fg'] > 0 and out['bg'] > 0


def test_every_level_gets_boxes():
    boxes = torch.cat([i.bboxes for i in make_gt(extra=EXTRA)])
    assert set(map_boxes_to_levels(boxes, 5).tolist()) == {0, 1, 2, 3, 4}


def test_defaults_and_adapter_init():
    loss = DeFeatLoss()
    assert (loss.loss_weight_fg, loss.loss_weight_bg, loss.strides, loss.finest_scale) == \
        (3.0, 12.0, STRIDES, 56.)
    for conv in loss.adapt.convs:
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        assert conv.weight.abs().max() <= 2e-4  # normal().fmod(2) * 1e-4
        assert conv.weight.std() > 1e-5


@pytest.mark.parametrize('pad_hw', [(768, 1024), (64, 64), (200, 72)])
def test_masks_match_official_rules(pad_hw):
    insts = make_gt(num_boxes=(30, 9, 0), img_hw=pad_hw, extra=EXTRA, seed=3)
    shapes = level_shapes(pad_hw)
    masks = defeat_gt_masks(insts, shapes, STRIDES)
    ref = defeat_masks_oracle([i.bboxes for i in insts], shapes, STRIDES)
    for m, r in zip(masks, ref):
        assert torch.equal(m, r.float())


def test_images_without_boxes():
    S, T = features(level_shapes((256, 320)))
    loss = randomise(DeFeatLoss(4, 4))
    compare(loss, S, T, make_gt(num_boxes=(5, 0), img_hw=(256, 320)))
    out, _ = compare(loss, S, T, make_gt(num_boxes=(0, 0)))
    assert out['fg'] == 0 and out['bg'] > 0


def test_tiny_levels():
    # a 64 x 64 batch: P6 is 1 x 1
    shapes = level_shapes((64, 64))
    assert shapes[-1] == (1, 1)
    S, T = features(shapes)
    insts = make_gt(img_hw=(64, 64), extra=torch.tensor([[0., 0., 64., 64.], [60., 60., 90., 99.]]))
    compare(randomise(DeFeatLoss(4, 4)), S, T, insts)


def test_batch_of_one():
    S, T = features(level_shapes((256, 320)), n=1)
    compare(randomise(DeFeatLoss(4, 4)), S, T, make_gt(num_boxes=(8, ), img_hw=(256, 320)))


def test_student_channels_differ():
    S, T = features(level_shapes((256, 320)), cs=3, ct=5)
    compare(randomise(DeFeatLoss(3, 5)), S, T, make_gt(img_hw=(256, 320)))


def test_without_adaptation():
    S, T = features(level_shapes((256, 320)))
    loss = DeFeatLoss(4, 4, adapt=False, loss_weight_fg=4.0, loss_weight_bg=16.0)
    assert loss.adapt is None and not list(loss.parameters())
    compare(loss, S, T, make_gt(img_hw=(256, 320)))


def test_other_strides():
    strides = (8, 16, 32, 64, 128)
    S, T = features(level_shapes((256, 320), strides))
    compare(randomise(DeFeatLoss(4, 4, strides=strides)), S, T, make_gt(img_hw=(256, 320)))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    S, T = features(level_shapes((256, 320)), dtype=dtype)
    loss = randomise(DeFeatLoss(4, 4))
    insts = make_gt(img_hw=(256, 320))
    out, _ = compare(loss, S, T, insts)
    grads = torch.autograd.grad(out['fg'] + out['bg'], S)
    assert all(g.dtype == dtype for g in grads)


def test_autocast_bf16_returns_fp32():
    S, T = features(level_shapes((256, 320)))
    loss = randomise(DeFeatLoss(4, 4))
    insts = make_gt(img_hw=(256, 320))
    ref = loss(S, T, insts)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(S, T, insts)
    for k in ('fg', 'bg'):
        assert out[k].dtype == torch.float32 and torch.equal(out[k], ref[k])


def test_horizontal_boxes_input():
    boxes_mod = pytest.importorskip('mmdet.structures.bbox')
    S, T = features(level_shapes((256, 320)))
    insts = make_gt(img_hw=(256, 320))
    wrapped = [InstanceData(bboxes=boxes_mod.HorizontalBoxes(i.bboxes)) for i in insts]
    loss = DeFeatLoss(4, 4)
    a, b = loss(S, T, insts), loss(S, T, wrapped)
    assert torch.equal(a['fg'], b['fg']) and torch.equal(a['bg'], b['bg'])


def test_clear_errors():
    S, T = features(level_shapes((256, 320)))
    insts = make_gt(img_hw=(256, 320))
    with pytest.raises(ValueError, match='5 levels, got 4 student'):
        DeFeatLoss(4, 4)(S[:4], T[:4], insts)
    with pytest.raises(ValueError, match=r'level 0.*\(2, 4, 64, 80\).*\(2, 4, 64, 80\).*'
                       r'N x 8 x H x W'):
        DeFeatLoss(8, 4)(S, T, insts)
    with pytest.raises(ValueError, match='adapt=True'):
        DeFeatLoss(3, 4, adapt=False)


def test_builds_from_registry():
    from mmkd.registry import MODELS
    loss = MODELS.build(dict(type='mmkd.DeFeatLoss', loss_weight_fg=4.0, loss_weight_bg=16.0))
    assert isinstance(loss, DeFeatLoss)
