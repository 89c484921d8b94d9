"""CrossKD on GFL: cross-head predictions and both losses against the official loss_by_feat.

The reference (tests/oracles.py ``crosskd_gfl_oracle``) runs jbwang1997/CrossKD's
``crosskd_gfl.py`` line by line on two tiny mmdet GFL heads with fixed random weights, in
float64; mmkd gets the same heads, the features recorded by ``mmkd.LevelOutputs`` and the
teacher head by ``set_teacher_head``, as ``DetectionDistill`` hands it over.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import InstanceData

import mmkd  # noqa: F401
from _toy import REPO, tiny_batch, tiny_toy_cfg
from mmkd.models.losses import GFLCrossKDLoss
from mmkd.models.losses.crosskd import align_scale
from mmkd.models.recorders import LevelOutputsRecorder
from oracles import assert_close_rel as close
from oracles import crosskd_gfl_oracle, randomise_parameters

NUM_CLASSES, REG_MAX, CH = 3, 4, 8
STRIDES = [8, 16, 32, 64, 128]
ANCHORS = dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
               strides=STRIDES)
PAD = (96, 128)


def gfl_head(seed):
    from mmdet.models.dense_heads import GFLHead
    head = GFLHead(
        num_classes=NUM_CLASSES, in_channels=CH, feat_channels=CH, stacked_convs=4,
        reg_max=REG_MAX, norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        anchor_generator=ANCHORS,
        train_cfg=ConfigDict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1,
                             pos_weight=-1, debug=False))
    return randomise_parameters(head, seed, std=0.3, vector_mean=0.5)


def make_batch(seed, num_imgs=2):
    """FPN levels of student and teacher, GT and metas; image 2 is smaller than the batch,
    so that its anchors in the padding get label weight 0."""
    gen = torch.Generator().manual_seed(seed)
    sizes = [(-(-PAD[0] // s), -(-PAD[1] // s)) for s in STRIDES]
    x_S = [torch.randn(num_imgs, CH, h, w, generator=gen) for h, w in sizes]
    x_T = [torch.randn(num_imgs, CH, h, w, generator=gen) * 2 + 0.5 for h, w in sizes]
    gts, metas = [], []
    for i in range(num_imgs):
        img = PAD if i == 0 else (PAD[0] - 30, PAD[1] - 40)
        boxes = torch.tensor([[5.5, 8., 40., 50.], [img[1] - 60., 20., img[1] - 2., 80.]])
        if i == 0:  # a large box: positives on coarse levels too
            boxes = torch.cat([boxes, torch.tensor([[4., 4., 120., 92.]])])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=img[0] - 1)
        gts.append(InstanceData(bboxes=boxes,
                                labels=torch.randint(0, NUM_CLASSES, (len(boxes), ),
                                                     generator=gen)))
        metas.append(dict(img_shape=img, pad_shape=img, batch_input_shape=PAD))
    return x_S, x_T, gts, metas


def held(head, x, k):
    """What the config's recorders give the loss: the outputs of conv k-1 of each branch
    (``mmkd.LevelOutputs``, every level in one record), or the FPN levels for k = 0."""
    if k == 0:
        return list(x), list(x), head(x)
    recorders = [LevelOutputsRecorder(f'{b}_convs.{k - 1}') for b in ('cls', 'reg')]
    for r in recorders:
        r.initialize(head)
    with recorders[0], recorders[1]:
        out = head(x)
    return recorders[0].get_record_data(), recorders[1].get_record_data(), out


def test_level_outputs_records_every_call_in_one_record():
    from mmkd.models.recorders import is_module_recorder
    head = gfl_head(20)
    x, _, _, _ = make_batch(21)
    recorder = LevelOutputsRecorder('cls_convs.2')
    recorder.initialize(head)
    assert is_module_recorder(recorder)
    head(x)  # outside the context: nothing is recorded
    with recorder:
        head(x)
    record = recorder.get_record_data()
    assert len(recorder.data_buffer) == 1 and len(record) == len(STRIDES)
    assert [r.shape[-2:] for r in record] == [lvl.shape[-2:] for lvl in x]
    assert recorder.get_record_data(data_idx=2) is record[2]
    with recorder:  # a new step starts a new record
        head(x[:2])
    assert len(recorder.get_record_data()) == 2


def build_loss(k, head_T):
    """The loss with the teacher head, frozen as DetectionDistill (and CrossKD) freeze it."""
    head_T.requires_grad_(False)
    loss = GFLCrossKDLoss(num_classes=NUM_CLASSES, reg_max=REG_MAX, reused_teacher_head_idx=k,
                          anchor_generator=ANCHORS)
    loss.set_teacher_head(head_T)
    return loss


def test_align_scale_gives_the_teacher_channel_statistics():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 5, generator=gen) * 3 + 1
    t = torch.randn(2, 3, 4, 5, generator=gen) * torch.tensor([0.5, 2., 4.])[:, None, None] - 2
    out = align_scale(s, t)
    for c in range(3):
        a, b = out[:, c].double(), t[:, c].double()
        torch.testing.assert_close(a.mean(), b.mean(), atol=1e-5, rtol=0)
        torch.testing.assert_close(a.std(), b.std() * s[:, c].std() / (s[:, c].std() + 1e-6),
                                   rtol=1e-5, atol=0)


@pytest.mark.parametrize('k', [3, 2, 0])
def test_matches_crosskd_gfl_loss_by_feat(k):
    head_S, head_T = gfl_head(1), gfl_head(2)
    x_S, x_T, gts, metas = make_batch(3)
    ref_S = [x.double().requires_grad_() for x in x_S]
    frozen_T = copy.deepcopy(head_T).double().requires_grad_(False)  # CrossKD's freeze()
    ref = crosskd_gfl_oracle(copy.deepcopy(head_S).double(), frozen_T, ref_S,
                             [x.double() for x in x_T], gts, metas, reused_idx=k)

    ours_S = [x.clone().requires_grad_() for x in x_S]
    cls_S, reg_S, _ = held(head_S, ours_S, k)
    with torch.no_grad():
        cls_T, reg_T, preds_T = held(head_T, x_T, k)
    loss = build_loss(k, head_T)
    cls_X, reg_X = loss.cross_head(cls_S, reg_S, cls_T, reg_T)
    for a, b in zip(cls_X + reg_X, ref['cls_scores'] + ref['bbox_preds']):
        close(a, b)
    ours = loss(cls_S, reg_S, cls_T, reg_T, preds_T, gts, metas)
    for key in ('cls_kd', 'reg_kd'):
        assert ours[key].dtype == torch.float32 and ours[key].item() > 0, key
        close(ours[key], ref[key])
    (ours['cls_kd'] + ours['reg_kd']).backward()
    (ref['cls_kd'] + ref['reg_kd']).backward()
    for a, b in zip(ours_S, ref_S):
        close(a.grad, b.grad)


def test_official_held_features_are_post_relu():
    """The official code keeps conv 3's output before ``activate`` (crosskd_gfl.py L59-61), but
    the activation is mmcv's in-place ReLU (L62), so what it keeps is the post-ReLU map: the
    ConvModule's output, which mmkd records."""
    head = gfl_head(4)
    x, _, _, _ = make_batch(5)
    cls_held, _, _ = held(head, x, 3)
    conv = head.cls_convs[2]
    assert conv.activate.inplace
    for lvl, rec in zip(x, cls_held):
        feat = lvl
        for c in head.cls_convs[:2]:
            feat = c(feat)
        pre = conv(feat, activate=False)
        torch.testing.assert_close(rec, pre.clamp(min=0))
        assert (pre < 0).any()  # the difference would show


def test_reg_kd_ignores_anchors_with_zero_label_weight():
    """Anchors outside image 2 (in the batch padding) have label weight 0: whatever the heads
    predict there must not change either term."""
    head_S, head_T = gfl_head(6), gfl_head(7)
    x_S, x_T, gts, metas = make_batch(8)
    loss = build_loss(3, head_T)
    cls_S, reg_S, _ = held(head_S, x_S, 3)
    cls_T, reg_T, (scores_T, dists_T) = held(head_T, x_T, 3)
    base = loss(cls_S, reg_S, cls_T, reg_T, (scores_T, dists_T), gts, metas, return_levels=True)
    # image 2 is 66 x 88 in a 96 x 128 batch: on level 0 (stride 8) rows >= 9 are padding
    scores_T = [s.clone() for s in scores_T]
    dists_T = [d.clone() for d in dists_T]
    scores_T[0][1, :, 9:] += 5.
    dists_T[0][1, :, 9:] -= 3.
    moved = loss(cls_S, reg_S, cls_T, reg_T, (scores_T, dists_T), gts, metas,
                 return_levels=True)
    torch.testing.assert_close(moved['cls_kd'][0], base['cls_kd'][0])
    torch.testing.assert_close(sum(moved['reg_kd']), sum(base['reg_kd']))


def test_teacher_head_is_a_reference_not_a_submodule():
    head_T = gfl_head(9)
    loss = build_loss(3, head_T)
    assert loss.teacher_head is head_T
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    assert 'teacher_head' not in dict(loss.named_modules())


def test_errors_name_the_fix():
    head_S, head_T = gfl_head(10), gfl_head(11)
    x_S, x_T, gts, metas = make_batch(12)
    cls_S, reg_S, _ = held(head_S, x_S, 3)
    cls_T, reg_T, preds_T = held(head_T, x_T, 3)
    bare = GFLCrossKDLoss(num_classes=NUM_CLASSES, reg_max=REG_MAX, anchor_generator=ANCHORS)
    with pytest.raises(RuntimeError, match='set_teacher_head'):
        bare(cls_S, reg_S, cls_T, reg_T, preds_T, gts, metas)
    with pytest.raises(ValueError, match='use a GFL teacher'):
        bare.set_teacher_head(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match='at most 4'):
        GFLCrossKDLoss(num_classes=NUM_CLASSES, reg_max=REG_MAX, reused_teacher_head_idx=5,
                       anchor_generator=ANCHORS).set_teacher_head(head_T)
    with pytest.raises(ValueError, match='num_classes=80'):
        GFLCrossKDLoss(reg_max=REG_MAX, anchor_generator=ANCHORS).set_teacher_head(head_T)
    loss = build_loss(3, head_T)
    with pytest.raises(ValueError, match='mmkd.LevelOutputs'):  # one level, as ModuleOutputs
        loss(cls_S[0], reg_S, cls_T, reg_T, preds_T, gts, metas)
    with pytest.raises(ValueError, match=r'bbox_head.cls_convs.2 of both heads'):
        loss(cls_S, reg_S, [c[:, :4] for c in cls_T], reg_T, preds_T, gts, metas)
    with pytest.raises(ValueError, match='reused_teacher_head_idx must be >= 0'):
        GFLCrossKDLoss(reused_teacher_head_idx=-1)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_fp32(dtype):
    head_S, head_T = gfl_head(13), gfl_head(14)
    x_S, x_T, gts, metas = make_batch(15)
    cls_S, reg_S, _ = held(head_S, x_S, 3)
    cls_T, reg_T, preds_T = held(head_T, x_T, 3)
    loss = build_loss(3, head_T)
    half = lambda xs: [x.to(dtype) for x in xs]  # noqa: E731
    out = loss(half(cls_S), half(reg_S), half(cls_T), half(reg_T),
               (half(preds_T[0]), half(preds_T[1])), gts, metas)
    up = lambda xs: [x.to(dtype).float() for x in xs]  # noqa: E731
    ref = loss(up(cls_S), up(reg_S), up(cls_T), up(reg_T), (up(preds_T[0]), up(preds_T[1])),
               gts, metas)
    for key in out:
        assert out[key].dtype == torch.float32
        torch.testing.assert_close(out[key], ref[key])


# --------------------------------------------------------------------------------------------
# In DetectionDistill: the teacher head handed over, gradients through it, teacher unchanged
# --------------------------------------------------------------------------------------------
CROSSKD_TOY = 'configs/toy/crosskd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py'


@pytest.fixture(scope='module')
def toy_algo(tmp_path_factory):
    init_default_scope('mmdet')
    cfg = tiny_toy_cfg(osp.join(REPO, CROSSKD_TOY), str(tmp_path_factory.mktemp('toy')))
    torch.manual_seed(0)
    algo = MODELS.build(cfg.model)
    algo.init_weights()
    algo.train()
    return algo, cfg


def test_detection_distill_hands_over_the_frozen_teacher_head(toy_algo):
    algo, _ = toy_algo
    loss = algo.distiller.distill_losses['loss_crosskd']
    assert loss.teacher_head is algo.teacher.bbox_head
    assert not loss.teacher_head.training
    assert not any(p.requires_grad for p in loss.teacher_head.parameters())
    head_params = {id(p) for p in algo.teacher.bbox_head.parameters()}
    assert not head_params & {id(p) for p in algo.parameters()}
    assert not any(k.startswith('teacher') or '.teacher_head.' in k for k in algo.state_dict())


def test_gradients_reach_the_student_through_the_teacher_head_only(toy_algo):
    algo, _ = toy_algo
    algo.zero_grad()
    losses = algo(**tiny_batch(algo), mode='loss')
    distill = losses['distill.loss_crosskd_cls_kd'] + losses['distill.loss_crosskd_reg_kd']
    assert distill.item() > 0
    distill.backward()
    head = algo.student.bbox_head
    # the student's convs up to the recorded one, and everything below them, learn from it...
    for name in ('cls_convs.0.conv.weight', 'cls_convs.2.conv.weight', 'reg_convs.2.gn.weight'):
        grad = dict(head.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert algo.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    # ...its own last convs and predictors do not: the teacher's replace them on that path
    for name in ('cls_convs.3.conv.weight', 'gfl_cls.weight', 'gfl_reg.weight'):
        assert dict(head.named_parameters())[name].grad is None, name
    assert all(p.grad is None for p in algo.teacher.parameters())


def test_teacher_unchanged_after_an_optimizer_step(toy_algo):
    algo, cfg = toy_algo
    optim_wrapper = build_optim_wrapper(algo, cfg.optim_wrapper)
    teacher = {k: v.clone() for k, v in algo.teacher.state_dict().items()}
    student = {k: v.clone() for k, v in algo.student.state_dict().items()}
    losses = algo.train_step(tiny_batch(algo, seed=1), optim_wrapper)
    assert torch.isfinite(losses['distill.loss_crosskd_reg_kd'])
    assert all(torch.equal(v, teacher[k]) for k, v in algo.teacher.state_dict().items())
    assert all(p.grad is None for p in algo.teacher.parameters())
    assert any(not torch.equal(v, student[k]) for k, v in algo.student.state_dict().items()
               if v.dtype.is_floating_point)


def test_a_teacher_without_bbox_head_is_refused(toy_algo):
    algo, _ = toy_algo
    teacher = algo.teacher
    object.__setattr__(algo, 'teacher', torch.nn.Module())
    try:
        with pytest.raises(ValueError, match="'loss_crosskd' .* runs the teacher's bbox_head"):
            algo._hand_teacher_head_to_losses()
    finally:
        object.__setattr__(algo, 'teacher', teacher)
