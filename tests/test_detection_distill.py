"""DetectionDistill: teacher handling, checkpoint checks, data plumbing, start-up errors."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from mmkd.models.algorithms.teacher_checkpoint import TeacherCheckpointError
from mmkd.registry import MODELS as MMKD_MODELS
from _toy import GFL_X50_TEACHER, PKD_TOY, tiny_batch, tiny_toy_cfg


@pytest.fixture(scope='module')
def pkd_cfg(tmp_path_factory):
    """The toy PKD model with a ResNeXt-50 teacher: these tests need a teacher of another
    architecture than the student (the toy GFL teacher is an R18 like its students)."""
    init_default_scope('mmdet')
    model = tiny_toy_cfg(PKD_TOY, str(tmp_path_factory.mktemp('toy'))).model
    model.teacher = copy.deepcopy(GFL_X50_TEACHER)
    return model


def build(model_cfg, **changes):
    cfg = copy.deepcopy(model_cfg)
    cfg.update(changes)
    return MODELS.build(cfg)


def test_teacher_is_frozen_eval_and_out_of_checkpoints(pkd_cfg):
    algo = build(pkd_cfg)
    algo.train()
    assert not algo.teacher.training and all(not m.training for m in algo.teacher.modules())
    assert all(not p.requires_grad for p in algo.teacher.parameters())
    assert not any(k.startswith('teacher.') for k in algo.state_dict())
    teacher_params = {id(p) for p in algo.teacher.parameters()}
    assert not teacher_params & {id(p) for p in algo.parameters()}
    # device/dtype moves still reach the teacher
    algo.double()
    assert next(algo.teacher.parameters()).dtype == torch.float64
    algo.float()
    # mmrazor's behaviour on request
    kept = build(pkd_cfg, teacher_in_checkpoint=True)
    assert any(k.startswith('teacher.') for k in kept.state_dict())


def test_step_logs_every_loss_and_teacher_keeps_no_graph(pkd_cfg):
    algo = build(pkd_cfg)
    algo.train()
    batch = tiny_batch(algo)
    losses = algo(**batch, mode='loss')
    assert {f'distill.loss_pkd_fpn{i}' for i in range(4)} <= set(losses)
    assert {'student.loss_cls', 'student.loss_bbox', 'student.loss_dfl'} <= set(losses)
    values = [t for v in losses.values() for t in (v if isinstance(v, list) else [v])]
    assert all(torch.isfinite(t).all() for t in values)
    teacher_feats = algo.distiller.teacher_recorders.get_recorder('fpn').get_record_data()
    assert all(f.grad_fn is None and not f.requires_grad for f in teacher_feats)
    assert algo.teacher_stage == 'neck'  # only backbone+neck recorders: the head is skipped


def test_teacher_checkpoint_loads_and_bad_ones_are_refused(pkd_cfg, tmp_path):
    donor = build(pkd_cfg)
    good = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=donor.teacher.state_dict()), good)
    algo = build(pkd_cfg, teacher_ckpt=str(good))
    for k, v in donor.teacher.state_dict().items():
        torch.testing.assert_close(algo.teacher.state_dict()[k], v)

    with pytest.raises(TeacherCheckpointError, match='does not exist.*model.teacher_ckpt'):
        build(pkd_cfg, teacher_ckpt=str(tmp_path / 'missing.pth'))

    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    with pytest.raises(TeacherCheckpointError, match='could not read'):
        build(pkd_cfg, teacher_ckpt=str(broken))

    # the student's weights are not the teacher's: most keys fail to match and are listed
    other = tmp_path / 'student_as_teacher.pth'
    torch.save(dict(state_dict=donor.student.state_dict()), other)
    with pytest.raises(TeacherCheckpointError, match=r'(?s)does not fit.*only 72 of 368.*'
                       r'missing in file.*backbone.*wrong shape'):
        build(pkd_cfg, teacher_ckpt=str(other))


def test_unknown_recorder_source_names_the_nearest_modules(pkd_cfg):
    cfg = copy.deepcopy(pkd_cfg)
    cfg.distiller.student_recorders.fpn.source = 'nek'
    with pytest.raises(KeyError, match=r"'nek' is not a module of the student.*'neck'"):
        MODELS.build(cfg)


@MMKD_MODELS.register_module(force=True)
class _GroundTruthProbe(torch.nn.Module):
    """Records what the distiller hands a GT-aware loss."""
    seen: dict = {}

    def forward(self, preds_S, batch_gt_instances, batch_img_metas):
        type(self).seen = dict(gt=batch_gt_instances, metas=batch_img_metas)
        return preds_S[0].sum() * 0


def test_ground_truth_reaches_losses_and_head_recorders_run_the_teacher_head(pkd_cfg):
    cfg = copy.deepcopy(pkd_cfg)
    d = cfg.distiller
    d.student_recorders.update(
        gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
        metas=dict(type='mmkd.BatchData', source='batch_img_metas'))
    d.teacher_recorders.update(cls=dict(type='mmrazor.ModuleOutputs', source='bbox_head.gfl_cls'))
    d.distill_losses.update(loss_probe=dict(type='mmkd._GroundTruthProbe'))
    d.loss_forward_mappings.update(loss_probe=dict(
        preds_S=dict(from_student=False, recorder='cls'),
        batch_gt_instances=dict(from_student=True, recorder='gt'),
        batch_img_metas=dict(from_student=True, recorder='metas')))
    algo = MODELS.build(cfg)
    assert algo.teacher_stage == 'head'
    batch = tiny_batch(algo, num_images=3)
    algo(**batch, mode='loss')
    seen = _GroundTruthProbe.seen
    assert [len(g) for g in seen['gt']] == [2, 2, 0]
    torch.testing.assert_close(seen['gt'][0].bboxes, batch['data_samples'][0].gt_instances.bboxes)
    assert seen['metas'][0]['batch_input_shape'] == (64, 64)
    # the teacher's class head ran once per FPN level
    assert len(algo.distiller.teacher_recorders.get_recorder('cls').data_buffer) == 5


def test_rois_requested_on_a_one_stage_detector_are_refused(pkd_cfg):
    cfg = copy.deepcopy(pkd_cfg)
    cfg.distiller.student_recorders.rois = dict(type='mmkd.BatchData', source='rois')
    cfg.distiller.distill_losses.loss_probe = dict(type='mmkd.PKDLoss')
    cfg.distiller.loss_forward_mappings.loss_probe = dict(
        preds_S=dict(from_student=True, recorder='rois'),
        preds_T=dict(from_student=True, recorder='rois'))
    with pytest.raises(ValueError, match='one-stage detector.*Faster R-CNN'):
        MODELS.build(cfg)


def test_inheriting_strategy_survives_init_weights(pkd_cfg, tmp_path):
    donor = build(pkd_cfg)
    torch.nn.init.normal_(donor.teacher.bbox_head.gfl_cls.weight, 3.0)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=donor.teacher.state_dict()), ckpt)
    algo = build(pkd_cfg, teacher_ckpt=str(ckpt), inherit_from_teacher=['bbox_head'])
    algo.init_weights()  # what the runner does before training
    for k, v in donor.teacher.bbox_head.state_dict().items():
        torch.testing.assert_close(algo.student.bbox_head.state_dict()[k], v)
    # the student's backbone is its own
    assert not torch.equal(algo.student.backbone.conv1.weight, algo.teacher.backbone.conv1.weight)
    with pytest.raises(ValueError, match=r'neck\.lateral_convs.*inherit only'):
        build(pkd_cfg, inherit_from_teacher=['neck'])


CAFFE_INPUTS = dict(type='DetDataPreprocessor', mean=[103.53, 116.28, 123.675],
                    std=[1.0, 1.0, 1.0], bgr_to_rgb=False, pad_size_divisor=32)


def _raw_batch(sizes, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for h, w in sizes:
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1, 1)))
        s.gt_instances = InstanceData(bboxes=torch.tensor([[4., 4., 30., 28.]]),
                                      labels=torch.tensor([1]))
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g).to(torch.uint8))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def test_a_teacher_with_other_input_statistics_gets_its_own_normalisation(pkd_cfg):
    """A caffe-style (BGR, mean only) teacher under a pytorch-style (RGB, mean/std) student."""
    cfg = copy.deepcopy(pkd_cfg)
    cfg.teacher.data_preprocessor = CAFFE_INPUTS
    algo = MODELS.build(cfg)
    assert algo.teacher_inputs.needed
    raw = _raw_batch([(64, 64), (40, 56)])  # the second image is padded
    student_batch = algo.data_preprocessor(copy.deepcopy(raw), True)
    expected = algo.teacher.data_preprocessor(copy.deepcopy(raw), True)['inputs']
    got = algo.teacher_inputs(student_batch['inputs'], student_batch['data_samples'])
    assert got.shape == expected.shape == student_batch['inputs'].shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    assert got[1, :, 40:, :].abs().max() == 0 and got[1, :, :, 56:].abs().max() == 0
    # the features the losses see are the teacher's on its own inputs
    algo.train()
    algo(**student_batch, mode='loss')
    recorded = algo.distiller.teacher_recorders.get_recorder('fpn').get_record_data()
    with torch.no_grad():
        own = algo.teacher.extract_feat(expected)
    for r, o in zip(recorded, own):
        torch.testing.assert_close(r, o, rtol=1e-4, atol=1e-4)


def test_same_input_statistics_pass_the_batch_through_untouched(pkd_cfg):
    algo = build(pkd_cfg)
    assert not algo.teacher_inputs.needed
    batch = tiny_batch(algo)
    assert algo.teacher_inputs(batch['inputs'], batch['data_samples']) is batch['inputs']


def test_a_teacher_padding_coarser_than_the_student_is_refused(pkd_cfg):
    cfg = copy.deepcopy(pkd_cfg)
    cfg.teacher.data_preprocessor = dict(CAFFE_INPUTS, pad_size_divisor=64)
    with pytest.raises(ValueError, match='multiple of 64'):
        MODELS.build(cfg)


def test_student_only_weights_load_strictly(pkd_cfg, tmp_path):
    from mmkd.models.algorithms.checkpoint_keys import student_state_dict
    from mmkd.models.algorithms.student_only import load_student_weights, student_model_cfg
    algo = build(pkd_cfg)
    path = tmp_path / 'distill.pth'
    torch.save(dict(state_dict=algo.state_dict()), path)
    student = MODELS.build(student_model_cfg(pkd_cfg))
    load_student_weights(student, str(path))
    for k, v in algo.student.state_dict().items():
        torch.testing.assert_close(student.state_dict()[k], v)
    # an exported (plain) checkpoint loads the same way
    plain = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=student_state_dict(algo.state_dict())), plain)
    load_student_weights(student, str(plain))
    # another student (ResNet-34 stages) is refused, naming the keys
    other = copy.deepcopy(pkd_cfg)
    other.architecture.backbone.depth = 34
    with pytest.raises(RuntimeError, match=r'(?s)does not fit the student.*missing in file'):
        load_student_weights(MODELS.build(student_model_cfg(other)), str(path))


def test_non_backbone_inheriting_copies_every_matching_weight_outside_the_backbone(
        pkd_cfg, tmp_path):
    """The official FGD/MGD ``init_student``: all non-backbone weights whose name and shape
    match, here for a ResNet-18 GFL student of a ResNeXt-50 GFL teacher."""
    donor = build(pkd_cfg)
    for p in donor.teacher.parameters():  # far from any initialisation the student could have
        torch.nn.init.normal_(p, 3.0)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=donor.teacher.state_dict()), ckpt)
    torch.manual_seed(0)
    plain = build(pkd_cfg, teacher_ckpt=str(ckpt))
    plain.init_weights()
    torch.manual_seed(0)
    algo = build(pkd_cfg, teacher_ckpt=str(ckpt), inherit_from_teacher='non_backbone')
    algo.init_weights()  # what the runner does before training
    teacher, student, own = (donor.teacher.state_dict(), algo.student.state_dict(),
                             plain.student.state_dict())

    # by hand: FPN with start_level=1 has 3 lateral convs (inputs C3-C5: 128/256/512 channels in
    # ResNet-18, 512/1024/2048 in ResNeXt-50) and 5 output convs (3 + 2 extra), all 256 wide
    lateral_weights = {f'neck.lateral_convs.{i}.conv.weight' for i in range(3)}
    copied = [f'neck.lateral_convs.{i}.conv.bias' for i in range(3)]
    copied += [f'neck.fpn_convs.{i}.conv.{w}' for i in range(5) for w in ('weight', 'bias')]
    copied += [k for k in student if k.startswith('bbox_head.')]
    for k in copied:
        torch.testing.assert_close(student[k], teacher[k], msg=k)
    for k in lateral_weights:  # shapes differ: skipped, the student's own init stays
        assert student[k].shape != teacher[k].shape
        torch.testing.assert_close(student[k], own[k], msg=k)
    assert set(student) == {k for k in student if k.startswith('backbone.')} | set(copied) | \
        lateral_weights
    for k in student:  # the backbone is untouched
        if k.startswith('backbone.'):
            torch.testing.assert_close(student[k], own[k], msg=k)
    assert algo._inherit_teacher_weights() == sorted(copied)

    with pytest.raises(ValueError, match="'non_backbone'.*list of student sub-modules"):
        build(pkd_cfg, inherit_from_teacher='bbox_head')
