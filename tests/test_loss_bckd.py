"""BCKD on GFL: binary cls KD and the IoU-based localisation KD against the official loss_single.

The reference (tests/oracles.py ``bckd_gfl_oracle``) follows TinyTigerPan/BCKD's ``LDHead``
anchor by anchor in float64: GFL's integral decoding around the anchor centres, GIoU written out
as mmdet's ``bbox_overlaps``, the weights max_c |sigmoid(t) - sigmoid(s)| * label weight, and
the targets of mmdet's own GFLHead (the student's ATSS assignment).
"""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mmkd  # noqa: F401
from mmkd.models.losses import GFLBCKDLoss
from oracles import assert_close_rel as close
from oracles import bckd_gfl_oracle, giou_oracle

NUM_CLASSES, REG_MAX = 3, 4
STRIDES = [8, 16, 32, 64, 128]
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
               strides=STRIDES)
PAD = (96, 128)


def target_head():
    """mmdet's GFLHead with GFL's train_cfg: the official code's targets (``get_targets``)."""
    from mmdet.models.dense_heads import GFLHead
    return GFLHead(num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1,
                   reg_max=REG_MAX, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
                   anchor_generator=ANCHORS,
                   train_cfg=ConfigDict(assigner=dict(type='ATSSAssigner', topk=9),
                                        allowed_border=-1, pos_weight=-1, debug=False))


def make_batch(seed, boxes_per_img=((5.5, 8., 40., 50.), (60., 20., 126., 80.)),
               dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    sizes = [(-(-PAD[0] // s), -(-PAD[1] // s)) for s in STRIDES]

    def head():
        cls = [torch.randn(2, NUM_CLASSES, h, w, generator=gen) * 2 for h, w in sizes]
        reg = [torch.randn(2, 4 * (REG_MAX + 1), h, w, generator=gen) * 2 for h, w in sizes]
        return [c.to(dtype) for c in cls], [r.to(dtype) for r in reg]

    preds_S, preds_T = head(), head()
    gts, metas = [], []
    for i in range(2):
        img = PAD if i == 0 else (PAD[0] - 30, PAD[1] - 40)  # image 2: anchors in padding
        boxes = torch.tensor(boxes_per_img).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(max=img[1] - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=img[0] - 1)
        gts.append(InstanceData(bboxes=boxes, labels=torch.randint(
            0, NUM_CLASSES, (len(boxes), ), generator=gen)))
        metas.append(dict(img_shape=img, pad_shape=img, batch_input_shape=PAD))
    return preds_S, preds_T, gts, metas


def build(**kw):
    return GFLBCKDLoss(num_classes=NUM_CLASSES, reg_max=REG_MAX, anchor_generator=ANCHORS, **kw)


def leaves(preds, dtype):
    return tuple([t.detach().clone().to(dtype).requires_grad_() for t in part] for part in preds)


def test_giou_oracle_is_the_textbook_giou():
    a = [torch.tensor(v, dtype=torch.float64) for v in (0., 0., 2., 2.)]
    b = [torch.tensor(v, dtype=torch.float64) for v in (1., 1., 3., 3.)]
    # IoU 1/7, enclosing box 9, union 7: GIoU = 1/7 - 2/9
    torch.testing.assert_close(giou_oracle(a, b), torch.tensor(1 / 7 - 2 / 9, dtype=torch.float64))


def test_matches_bckd_loss_single():
    preds_S, preds_T, gts, metas = make_batch(0)
    ours_in, ref_in = leaves(preds_S, torch.float32), leaves(preds_S, torch.float64)
    ref_T = tuple([t.double() for t in part] for part in preds_T)
    ours = build()(ours_in, preds_T, gts, metas)
    ref = bckd_gfl_oracle(target_head(), ref_in, ref_T, gts, metas)
    for key in ('cls_kd', 'loc_kd'):
        assert ours[key].dtype == torch.float32 and ours[key].item() > 0, key
        close(ours[key], ref[key])
    (ours['cls_kd'] + ours['loc_kd']).backward()
    (ref['cls_kd'] + ref['loc_kd']).backward()
    for part_o, part_r in zip(ours_in, ref_in):
        for go, gr in zip(part_o, part_r):  # a level the reference never touched has no grad
            close(go.grad, gr.grad if gr.grad is not None else torch.zeros_like(gr))


def test_levels_without_positives_get_no_kd_as_officially():
    """Two small boxes: positives only on the fine levels. BCKD's LDHead computes both terms
    over every anchor of a level, but only under ``if len(pos_inds) > 0``."""
    preds_S, preds_T, gts, metas = make_batch(1, boxes_per_img=((10., 10., 30., 26.), ))
    levels = build()(leaves(preds_S, torch.float32), preds_T, gts, metas, return_levels=True)
    cls_kd, loc_kd = levels['cls_kd'], levels['loc_kd']
    assert cls_kd[0] > 0 and loc_kd[0] > 0
    assert cls_kd[-1] == 0 and loc_kd[-1] == 0 and cls_kd[-1].requires_grad
    ref = bckd_gfl_oracle(target_head(), preds_S, preds_T, gts, metas)
    close(sum(cls_kd), ref['cls_kd'])
    close(sum(loc_kd), ref['loc_kd'])


def test_weights_and_teacher_detached():
    preds_S, preds_T, gts, metas = make_batch(2)
    T_in = leaves(preds_T, torch.float32)
    out = build()(leaves(preds_S, torch.float32), T_in, gts, metas)
    (out['cls_kd'] + out['loc_kd']).backward()
    assert all(t.grad is None for part in T_in for t in part)
    # a teacher equal to the student: no score gap, so no localisation weight and no cls KD
    same = build()(preds_S, preds_S, gts, metas)
    assert same['cls_kd'].item() == 0 and same['loc_kd'].item() == 0
    weights = build(loss_loc_kd=dict(type='mmdet.GIoULoss', loss_weight=1.0),
                    loss_cls_kd=dict(type='mmkd.KDQualityFocalLoss', loss_weight=2.0))
    halved = weights(preds_S, preds_T, gts, metas)
    full = build()(preds_S, preds_T, gts, metas)
    torch.testing.assert_close(halved['loc_kd'] * 4, full['loc_kd'])
    torch.testing.assert_close(halved['cls_kd'], full['cls_kd'] * 2)


def test_no_gt_and_batch_of_one():
    preds_S, preds_T, gts, metas = make_batch(3)
    S_in = leaves(preds_S, torch.float32)
    empty = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    out = build()(S_in, preds_T, empty, metas)
    assert all(v.item() == 0 for v in out.values())
    sum(out.values()).backward()  # the graph is kept
    one = tuple([t[:1] for t in part] for part in preds_S), \
        tuple([t[:1] for t in part] for part in preds_T)
    ours = build()(one[0], one[1], gts[:1], metas[:1])
    ref = bckd_gfl_oracle(target_head(), one[0], one[1], gts[:1], metas[:1])
    for key in ours:
        close(ours[key], ref[key])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_fp32(dtype):
    preds_S, preds_T, gts, metas = make_batch(4, dtype=dtype)
    out = build()(preds_S, preds_T, gts, metas)
    up = lambda p: tuple([t.float() for t in part] for part in p)  # noqa: E731
    ref = build()(up(preds_S), up(preds_T), gts, metas)
    for key in out:
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], ref[key])


def test_shape_errors_and_registry():
    preds_S, preds_T, gts, metas = make_batch(5)
    with pytest.raises(ValueError, match='GFLBCKDLoss level 0: box distributions'):
        build()(preds_S, (preds_T[0], [r[:, :-1] for r in preds_T[1]]), gts, metas)
    from mmrazor.registry import MODELS
    loss = MODELS.build(dict(type='mmkd.GFLBCKDLoss', num_classes=NUM_CLASSES, reg_max=REG_MAX,
                             anchor_generator=ANCHORS))
    assert type(loss.loss_loc_kd).__name__ == 'GIoULoss' and loss.loss_loc_kd.loss_weight == 4
    assert type(loss.loss_cls_kd).__name__ == 'KDQualityFocalLoss'
