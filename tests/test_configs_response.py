"""LD, CrossKD, BCKD, DKD and DeFeat (neck + head) configs, and the composed ones (CrossKD + PKD,
ReviewKD + DKD): they build, train a step, and feed the right inputs.

The response-based methods compare head outputs, so what matters most is *what* reaches the
loss: LD must see the teacher GFL head's own output on the batch, DKD and DeFeat's head term the
student's and the teacher's RoI logits on the very same RoIs, with the labels of those RoIs.
"""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from _toy import REPO, tiny_batch, tiny_toy_cfg

LD_KEYS = {'distill.loss_ld_main_ld', 'distill.loss_ld_main_kd', 'distill.loss_ld_vlr_ld'}
DKD_KEYS = {'distill.loss_dkd'}
DEFEAT_KEYS = {'distill.loss_defeat_neck_fg', 'distill.loss_defeat_neck_bg',
               'distill.loss_defeat_head'}
CROSSKD_KEYS = {'distill.loss_crosskd_cls_kd', 'distill.loss_crosskd_reg_kd'}
CROSSKD_PKD_KEYS = CROSSKD_KEYS | {f'distill.loss_pkd_fpn{i}' for i in range(5)}
BCKD_KEYS = {'distill.loss_bckd_cls_kd', 'distill.loss_bckd_loc_kd'}
REVIEWKD_DKD_KEYS = {'distill.loss_hcl', 'distill.loss_dkd'}
GFL_KEYS = {'student.loss_cls', 'student.loss_bbox', 'student.loss_dfl'}
RCNN_KEYS = {'student.loss_rpn_cls', 'student.loss_rpn_bbox', 'student.loss_cls',
             'student.loss_bbox'}

#: config -> (distillation loss keys, student loss keys)
CONFIGS = {
    'configs/ld/ld_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': (LD_KEYS, GFL_KEYS),
    'configs/ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': (LD_KEYS, GFL_KEYS),
    'configs/dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    (DKD_KEYS, RCNN_KEYS),
    'configs/defeat/defeat-full_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    (DEFEAT_KEYS, RCNN_KEYS),
    'configs/crosskd/crosskd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py': (CROSSKD_KEYS, GFL_KEYS),
    'configs/crosskd/crosskd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': (CROSSKD_KEYS, GFL_KEYS),
    'configs/crosskd/crosskd-pkd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py': (CROSSKD_PKD_KEYS, GFL_KEYS),
    'configs/crosskd/crosskd-pkd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py':
    (CROSSKD_PKD_KEYS, GFL_KEYS),
    'configs/bckd/bckd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py': (BCKD_KEYS, GFL_KEYS),
    'configs/bckd/bckd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': (BCKD_KEYS, GFL_KEYS),
    'configs/reviewkd/reviewkd-dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    (REVIEWKD_DKD_KEYS, RCNN_KEYS),
    'configs/toy/ld_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py': (LD_KEYS, GFL_KEYS),
    'configs/toy/ld-full_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py': (LD_KEYS, GFL_KEYS),
    'configs/toy/dkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py': (DKD_KEYS, RCNN_KEYS),
    'configs/toy/defeat-full_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py':
    (DEFEAT_KEYS, RCNN_KEYS),
    'configs/toy/crosskd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py': (CROSSKD_KEYS, GFL_KEYS),
    'configs/toy/crosskd-pkd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py': (CROSSKD_PKD_KEYS, GFL_KEYS),
    'configs/toy/bckd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py': (BCKD_KEYS, GFL_KEYS),
    'configs/toy/reviewkd-dkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py':
    (REVIEWKD_DKD_KEYS, RCNN_KEYS),
}
LD_TOY = 'configs/toy/ld_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py'
DKD_TOY = 'configs/toy/dkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py'
DEFEAT_TOY = 'configs/toy/defeat-full_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py'


def model_cfg(config: str, tmp_dir: str):
    """The config's model, with nothing to download: no teacher ckpt, no ImageNet weights."""
    path = osp.join(REPO, config)
    if '/toy/' in config:
        return tiny_toy_cfg(path, tmp_dir).model
    cfg = Config.fromfile(path).model
    cfg.teacher_ckpt = None
    for side in ('architecture', 'teacher'):
        cfg[side].backbone = dict(init_cfg=None)
    return cfg


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
    init_default_scope('mmdet')
    return str(tmp_path_factory.mktemp('toy'))


@pytest.mark.parametrize('config', list(CONFIGS))
def test_config_builds_and_trains_one_step(config, toy_dir):
    distill_keys, student_keys = CONFIGS[config]
    torch.manual_seed(0)
    algo = MODELS.build(model_cfg(config, toy_dir))
    algo.train()
    optimizer = torch.optim.SGD(algo.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in algo.named_parameters()}
    losses = algo(**tiny_batch(algo), mode='loss')
    assert distill_keys | student_keys <= set(losses), sorted(losses)
    values = [t for v in losses.values() for t in (v if isinstance(v, list) else [v])]
    assert all(torch.isfinite(t).all() for t in values)
    total = sum(values)
    optimizer.zero_grad()
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in algo.parameters() if p.grad is not None)
    optimizer.step()
    changed = [n for n, p in algo.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('architecture.') for n in changed)  # the student
    if 'defeat' in config:  # the neck adaptation convs learn too
        assert any('loss_defeat_neck' in n for n in changed)
    if 'reviewkd' in config:  # and the review connector
        assert any('connectors.review' in n for n in changed)
    # the teacher only gives targets
    assert all(p.grad is None for p in algo.teacher.parameters())
    if '/ld_' in config:  # Main LD only: the other two terms are switched off
        assert losses['distill.loss_ld_main_kd'] == 0 and losses['distill.loss_ld_vlr_ld'] == 0
        assert losses['distill.loss_ld_main_ld'] > 0
    if '/ld-full_' in config:
        assert all(losses[k] > 0 for k in LD_KEYS)
    if 'crosskd' in config or 'bckd' in config:
        assert all(losses[k] > 0 for k in distill_keys)


def test_ld_sees_the_teacher_head_output_on_the_batch(toy_dir):
    algo = MODELS.build(model_cfg(LD_TOY, toy_dir))
    algo.train()
    batch = tiny_batch(algo)
    algo(**batch, mode='loss')
    assert algo.teacher_stage == 'head'
    distiller = algo.distiller
    cls_T, reg_T = distiller.get_record('head', from_student=False)
    cls_S, reg_S = distiller.get_record('head', from_student=True)
    with torch.no_grad():
        exp_cls_T, exp_reg_T = algo.teacher.bbox_head(algo.teacher.extract_feat(batch['inputs']))
        exp_cls_S, exp_reg_S = algo.student.bbox_head(algo.student.extract_feat(batch['inputs']))
    assert len(cls_T) == len(reg_T) == 5
    for got, exp in zip(list(cls_T) + list(reg_T), list(exp_cls_T) + list(exp_reg_T)):
        torch.testing.assert_close(got, exp)
        assert not got.requires_grad
    for got, exp in zip(list(cls_S) + list(reg_S), list(exp_cls_S) + list(exp_reg_S)):
        torch.testing.assert_close(got, exp, rtol=1e-4, atol=1e-5)
        assert got.requires_grad  # the student's head output keeps its graph
    gt = distiller.get_record('gt', from_student=True)
    assert [len(g) for g in gt] == [2, 2]


@pytest.mark.parametrize('config,logits,labels', [
    (DKD_TOY, 'logits', 'labels'),
    (DEFEAT_TOY, 'roi_logits', 'roi_labels'),
])
def test_roi_losses_compare_student_and_teacher_on_the_same_rois(config, logits, labels, toy_dir):
    cfg = model_cfg(config, toy_dir)
    cfg.distiller.student_recorders.rois = dict(type='mmkd.BatchData', source='rois')
    algo = MODELS.build(cfg)
    algo.train()
    batch = tiny_batch(algo)
    losses = algo(**batch, mode='loss')
    d = algo.distiller
    rois = d.get_record('rois', from_student=True)
    logits_S = d.get_record(logits, from_student=True)
    logits_T = d.get_record(logits, from_student=False)
    roi_labels = d.get_record(labels, from_student=True)
    num_classes = algo.student.roi_head.bbox_head.num_classes
    assert rois.shape[1] == 5 and set(rois[:, 0].long().tolist()) == {0, 1}
    assert logits_S.shape == logits_T.shape == (len(rois), num_classes + 1)
    assert roi_labels.shape == (len(rois), )
    assert logits_S.requires_grad and not logits_T.requires_grad

    inputs = batch['inputs']
    with torch.no_grad():
        exp_T = algo.teacher.roi_head._bbox_forward(algo.teacher.extract_feat(inputs),
                                                    rois)['cls_score']
        exp_S = algo.student.roi_head._bbox_forward(algo.student.extract_feat(inputs),
                                                    rois)['cls_score']
    torch.testing.assert_close(logits_T, exp_T)
    torch.testing.assert_close(logits_S.detach(), exp_S, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(logits_S.detach(), logits_T)  # two models, not one twice

    # the labels are those of the RoIs: fg RoIs overlap a GT of their class by IoU >= 0.5
    # (the rcnn assigner's pos_iou_thr), bg RoIs overlap every GT by less
    assert (roi_labels >= 0).all() and (roi_labels <= num_classes).all()
    fg = roi_labels < num_classes
    assert fg.any() and (~fg).any()
    for img, sample in enumerate(batch['data_samples']):
        mine = rois[:, 0] == img
        gt = sample.gt_instances
        ious = bbox_overlaps(rois[mine, 1:], gt.bboxes)
        best = ious.max(dim=1)
        assert (best.values[fg[mine]] >= 0.5).all() and (best.values[~fg[mine]] < 0.5).all()
        torch.testing.assert_close(gt.labels[best.indices[fg[mine]]], roi_labels[mine][fg[mine]])

    # and the loss is the loss of those inputs
    loss_cfg = copy.deepcopy(cfg.distiller.distill_losses)
    if 'dkd' in config:
        dkd = MODELS.build(loss_cfg.loss_dkd)
        torch.testing.assert_close(losses['distill.loss_dkd'], dkd(exp_S, exp_T, roi_labels),
                                   rtol=1e-4, atol=1e-6)
    else:
        head = MODELS.build(loss_cfg.loss_defeat_head)
        torch.testing.assert_close(losses['distill.loss_defeat_head'],
                                   head(exp_S, exp_T, roi_labels), rtol=1e-4, atol=1e-6)
