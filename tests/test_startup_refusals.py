"""Inputs that used to pass silently are refused (or reported) at start-up, with the fix.

Each test also applies the fix the message gives, where there is one, and checks that it works.
"""
import copy
import importlib.util
import json
import logging
import os.path as osp
import sys
import urllib.request

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, MODELS, init_default_scope
from torch import nn

import mmkd  # noqa: F401
from mmkd.engine.checkpoint_downloads import (CheckpointDownloadError, cache_file,
                                              explain_download_failure)
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from mmkd.models.algorithms.teacher_checkpoint import (TeacherCheckpointError,
                                                       load_teacher_checkpoint)
from _toy import PKD_TOY, REPO, tiny_toy_cfg

DKD_TOY = osp.join(REPO, 'configs/toy/dkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py')
CWD_TOY = osp.join(REPO, 'configs/toy/cwd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    init_default_scope('mmdet')
    root = str(tmp_path_factory.mktemp('toy'))
    return {name: tiny_toy_cfg(path, root).model
            for name, path in dict(pkd=PKD_TOY, cwd=CWD_TOY, dkd=DKD_TOY).items()}


def build(model_cfg, **changes):
    cfg = copy.deepcopy(model_cfg)
    cfg.update(changes)
    return MODELS.build(cfg)


# ------------------------------------------------------------------ teacher checkpoints
def test_a_teacher_checkpoint_of_another_depth_is_refused_by_module(toy, tmp_path):
    """ResNet-50 weights for a ResNet-101 teacher: blocks 6-22 of layer3 would stay random (the
    case first seen: ResNeXt-50 weights for a ResNeXt-101, the same blocks)."""
    def of_depth(depth):  # the toy Faster R-CNN teacher with a deeper ResNet
        return dict(toy['dkd'].teacher, backbone=dict(depth=depth),
                    neck=dict(in_channels=[256, 512, 1024, 2048]))

    r50 = MODELS.build(expand_model_cfg(of_depth(50)))
    path = tmp_path / 'r50.pth'
    torch.save(dict(state_dict=r50.state_dict()), path)
    r101 = copy.deepcopy(toy['dkd'])
    r101.teacher = of_depth(101)
    with pytest.raises(TeacherCheckpointError, match=(
            r"(?s)does not fully fit the teacher \(FasterRCNN\): \d+ of \d+ weights match.*"
            r'missing in the file \(\d+\): '
            r'backbone\.layer3\.6\.\* \(\d+\), backbone\.layer3\.7\.\*.*'
            r'another depth or width.*model\.teacher_ckpt.*teacher_ckpt_allow_missing')):
        build(r101, teacher_ckpt=str(path))
    # the opt-out by name loads the rest, and leaves the named blocks as initialised
    algo = build(r101, teacher_ckpt=str(path), teacher_ckpt_allow_missing=['backbone.layer3'])
    loaded = algo.teacher.state_dict()
    for key, value in r50.state_dict().items():
        if not key.startswith('backbone.layer3.'):
            assert torch.equal(loaded[key], value), key


def test_a_wrong_shaped_teacher_weight_is_refused_unless_named(toy, tmp_path):
    donor = MODELS.build(expand_model_cfg(toy['pkd'].teacher))
    state = donor.state_dict()
    width = donor.bbox_head.feat_channels  # 128 in the toy models
    state['bbox_head.gfl_cls.weight'] = torch.zeros(80, width, 3, 3)  # a head for 80 classes
    state['bbox_head.gfl_cls.bias'] = torch.zeros(80)
    state['extra.weight'] = torch.zeros(1)  # a key the teacher lacks: reported, not refused
    del state['backbone.bn1.num_batches_tracked']  # BN counters may be absent from old files
    path = tmp_path / 'coco_head.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(TeacherCheckpointError, match=(
            r"(?s)another shape in the file \(2, first 5\): \['bbox_head\.gfl_cls\.weight: file "
            rf"\(80, {width}, 3, 3\) vs model \(4, {width}, 3, 3\)'.*"
            r"teacher_ckpt_allow_missing=\['bbox_head\.gfl_cls'\]")):
        build(toy['pkd'], teacher_ckpt=str(path))
    for allowed in (['bbox_head.gfl_cls'], ['bbox_head.gfl_c*'], 'bbox_head.gfl_cls'):
        algo = build(toy['pkd'], teacher_ckpt=str(path), teacher_ckpt_allow_missing=allowed)
        assert algo.teacher.bbox_head.gfl_cls.weight.shape == (4, width, 3, 3)
        assert torch.equal(algo.teacher.bbox_head.gfl_reg.weight, donor.bbox_head.gfl_reg.weight)
    # a name is a module or weight, not a prefix of one: 'bbox_head.gfl' does not cover gfl_cls
    with pytest.raises(TeacherCheckpointError, match='another shape'):
        build(toy['pkd'], teacher_ckpt=str(path), teacher_ckpt_allow_missing=['bbox_head.gfl'])


def test_a_missing_toy_teacher_says_how_to_make_it(tmp_path):
    path = str(tmp_path / 'work_dirs/toy/teacher_faster-rcnn_r18-fpn-20e_toy.pth')
    with pytest.raises(TeacherCheckpointError, match=(
            r'does not exist.*model\.teacher_ckpt.*toy teacher.*`make toy METHODS=dkd` \(or '
            r'`python tools/toy_main_job.py --methods dkd`\).*tools/train.py '
            r'configs/toy/faster-rcnn_r18-fpn-20e_toy.py')):
        load_teacher_checkpoint(nn.Linear(1, 1), path)
    # any other missing file: no toy advice
    with pytest.raises(TeacherCheckpointError) as error:
        load_teacher_checkpoint(nn.Linear(1, 1), str(tmp_path / 'teacher.pth'))
    assert 'make toy' not in str(error.value)


# ------------------------------------------------------------------ downloads without internet
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No internet: every HTTP(S) request goes to a proxy that refuses connections; an empty
    torch download cache."""
    for var in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.setenv(var, 'http://127.0.0.1:9')
    for var in ('no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, '_opener', None)  # rebuilt from the variables above
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)


def test_an_offline_teacher_download_names_the_url_and_the_key(offline):
    url = 'https://download.openmmlab.com/mmdetection/v2.0/gfl/teacher_20200630-50c1ffdb.pth'
    with pytest.raises(TeacherCheckpointError) as error:
        load_teacher_checkpoint(nn.Linear(1, 1), url)
    message = str(error.value)
    assert 'could not download the teacher checkpoint (model.teacher_ckpt)' in message
    assert f'Could not download the checkpoint {url} (URLError' in message
    assert cache_file(url) in message and cache_file(url).endswith(
        osp.join('torch_home', 'hub', 'checkpoints', 'teacher_20200630-50c1ffdb.pth'))
    assert 'model.teacher_ckpt=/local/path/teacher_20200630-50c1ffdb.pth' in message


def test_an_offline_backbone_download_names_the_module_and_the_key(toy, offline):
    cfg = copy.deepcopy(toy['pkd'])
    cfg.architecture.backbone.init_cfg = dict(type='Pretrained',
                                              checkpoint='torchvision://resnet18')
    algo = MODELS.build(cfg)
    with pytest.raises(CheckpointDownloadError) as error:
        algo.init_weights()
    url = 'https://download.pytorch.org/models/resnet18-f37072fd.pth'
    assert error.value.url == url and 'URLError' in error.value.reason
    explained = str(explain_download_failure(algo, error.value))
    assert ("pretrained weights of the student's backbone (ResNet, init_cfg "
            "checkpoint='torchvision://resnet18')") in explained
    assert ('Fix: --cfg-options model.architecture.backbone.init_cfg=None (train it from '
            'scratch) or model.architecture.backbone.init_cfg.checkpoint=/local/path/'
            'resnet18-f37072fd.pth') in explained
    assert cache_file(url) in explained
    # the first fix works
    fixed = Config(dict(model=cfg))
    fixed.merge_from_dict({'model.architecture.backbone.init_cfg': None})
    MODELS.build(fixed.model).init_weights()


def test_amp_without_a_gpu_says_what_to_do(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('a GPU is there: --amp is fine')
    spec = importlib.util.spec_from_file_location('train_tool', osp.join(REPO, 'tools/train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(sys, 'argv', ['train.py', PKD_TOY, '--amp'])
    monkeypatch.setenv('LOCAL_RANK', '0')  # what the script sets when it is missing
    with pytest.raises(SystemExit, match=r'--amp needs a GPU.*On a CPU, train without --amp'):
        tool.main()


# ------------------------------------------------------------------ FPN levels of two families
def _frcnn_teacher_for(student_cfg, dkd_cfg):
    """The toy Faster R-CNN teacher (P2-P6) for a GFL student (P3-P7), at the GFL FPN's 256
    channels (the toy Faster R-CNN's are 128), so that only the levels differ."""
    cfg = copy.deepcopy(student_cfg)
    width = 256
    cfg.teacher = dict(
        copy.deepcopy(dkd_cfg.teacher), neck=dict(out_channels=width),
        rpn_head=dict(in_channels=width, feat_channels=width),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=width),
                      bbox_head=dict(in_channels=width)))
    return cfg


def test_levels_of_different_strides_are_refused_with_the_shift(toy):
    """Faster R-CNN teacher (P2-P6) and GFL student (P3-P7), both at data_idx i: PKD resized
    stride 8 onto stride 4 without a word."""
    cfg = _frcnn_teacher_for(toy['pkd'], toy['dkd'])
    with pytest.raises(ValueError, match=(
            r"'loss_pkd_fpn0' \(PKDLoss\) pairs feature maps of different strides: student "
            r"recorder 'fpn' \(`neck`\[0\]\) has stride 8 \(16x16 on the 128x128 dry-run input\), "
            r"teacher recorder 'fpn' \(`neck`\[0\]\) has stride 4 \(32x32\).*Fix: set "
            r'loss_forward_mappings\.loss_pkd_fpn0\.preds_T\.data_idx=1 \(the teacher level of '
            r'stride 8\); for the other levels too, shift every teacher data_idx by \+1 \(teacher '
            r'level strides: \[4, 8, 16, 32, 64\]\)')):
        MODELS.build(cfg)
    for mapping in cfg.distiller.loss_forward_mappings.values():  # the fix
        mapping.preds_T.data_idx += 1
    MODELS.build(cfg)


def test_cwd_across_families_is_refused_at_start_up_not_at_iteration_1(toy):
    cfg = _frcnn_teacher_for(toy['cwd'], toy['dkd'])
    with pytest.raises(ValueError, match=r"'loss_cwd_fpn0' \(ChannelWiseDivergence\) pairs "
                       r'feature maps of different strides.*stride 8.*stride 4'):
        MODELS.build(cfg)
    # after the shift, the student's P7 (stride 128) has no teacher level: said so
    for mapping in cfg.distiller.loss_forward_mappings.values():
        mapping.preds_T.data_idx += 1
    cfg.distiller.loss_forward_mappings.loss_cwd_fpn4.preds_T.data_idx = 4
    with pytest.raises(ValueError, match=r"'loss_cwd_fpn4'.*stride 128.*teacher records no level "
                       r'of stride 128 \(its strides: \[4, 8, 16, 32, 64\]\); drop this loss'):
        MODELS.build(cfg)
    del cfg.distiller.distill_losses['loss_cwd_fpn4']
    del cfg.distiller.loss_forward_mappings['loss_cwd_fpn4']
    MODELS.build(cfg)


def test_a_dry_run_warning_names_the_recorded_levels_not_level_0(toy):
    """A loss that fails on the dry run for another reason than channels or strides is
    reported with where each input comes from (recorder, module, FPN data_idx), not only with
    the loss's own count of the maps it was given ("level 0" for every one-level loss)."""
    cfg = copy.deepcopy(toy['pkd'])
    # all five student levels against the teacher's level 2: a level-count mismatch
    cfg.distiller.loss_forward_mappings.loss_pkd_fpn2.preds_S.pop('data_idx')
    with pytest.warns(UserWarning) as record:
        build(cfg)
    [message] = [str(w.message) for w in record if 'start-up dry run' in str(w.message)]
    assert message.startswith("Distillation loss 'loss_pkd_fpn2' (PKDLoss) failed on the "
                              'start-up dry run'), message
    assert ("preds_S = student recorder 'fpn' (`neck`), shape [(2, 256, 16, 16), "
            '(2, 256, 8, 8), (2, 256, 4, 4), (2, 256, 2, 2), (2, 256, 1, 1)]') in message
    assert "preds_T = teacher recorder 'fpn' (`neck`[2]), shape (2, 256, 4, 4)" in message
    assert 'got 5 student and 1 teacher levels' in message
    assert 'counts the maps the loss was given, not the FPN levels' in message
    assert 'connector' not in message.split('If training fails')[0]  # no channel hint


def test_readme_pairs_levels_across_families_as_printed(tmp_path):
    from test_configs_layout import readme_block, save_as_printed
    cfg = Config.fromfile(save_as_printed(readme_block(
        '# configs/my/pkd_faster-rcnn_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py'), tmp_path))
    assert cfg.model.teacher.cfg_path.startswith('mmdet::faster_rcnn/')
    # offline: no ImageNet or teacher weights; the strides do not depend on them
    cfg.model.teacher_ckpt = None
    cfg.merge_from_dict({'model.architecture.backbone.init_cfg': None,
                         'model.teacher.backbone.init_cfg': None})
    init_default_scope('mmdet')
    MODELS.build(cfg.model)  # the start-up checks pass
    for mapping in cfg.model.distiller.loss_forward_mappings.values():
        mapping.preds_T.data_idx -= 1  # without the README's shift
    with pytest.raises(ValueError, match='different strides'):
        MODELS.build(cfg.model)


# ------------------------------------------------------------------ bad boxes in COCO configs
COCO_CONFIGS = ['configs/detectors/gfl_r18-fpn_1x_coco.py',
                'configs/detectors/faster-rcnn_r18-fpn_2x_coco.py',
                'configs/pkd/pkd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py',
                'configs/dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']


@pytest.mark.parametrize('config', COCO_CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_coco_configs_refuse_bad_boxes(config, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, config))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'mmkd.CheckedCocoDataset', loader
    assert cfg.train_dataloader.persistent_workers is False  # exact resume with workers
    images = [dict(id=i, file_name=f'{i}.jpg', width=100, height=100) for i in (1, 2)]
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], area=400, iscrowd=0),
            dict(id=2, image_id=2, category_id=1, bbox=[60, 10, -30, 20], area=600, iscrowd=0)]
    with open(tmp_path / 'ann.json', 'w') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=1, name='person')]), f)
    dataset = dict(cfg.train_dataloader.dataset, data_root=str(tmp_path), ann_file='ann.json',
                   data_prefix=dict(img=''))
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match=r"image '2.jpg' \(id 2\), annotation id 2.*x2 < x1"):
        DATASETS.build(dataset)


def test_every_coco_config_reads_checked_data():
    """Every config that trains on COCO (not the toy set), including ones added later."""
    import glob
    paths = [p for p in sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))
             if '/_base_/' not in p and '/toy/' not in p]
    assert len(paths) > 30
    unchecked = [osp.relpath(p, REPO) for p in paths
                 if Config.fromfile(p).train_dataloader.dataset.type != 'mmkd.CheckedCocoDataset']
    assert not unchecked, unchecked


# ------------------------------------------------------------------ the registry warning
def test_building_a_distiller_logs_no_registry_fallback(toy):
    """The teacher's init_weights() ran inside the build, under the scope 'mmkd', whose weight
    initializer registry did not exist: mmengine warned and fell back on every run."""
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        algo = build(toy['pkd'])  # no teacher_ckpt: the teacher's init_weights() runs here
        algo.init_weights()
    finally:
        logger.removeHandler(handler)
    assert not [m for m in messages if 'Failed to search registry' in m]
