"""The pictures: every method's picture on tiny untrained toy models of both families (GFL, Faster
R-CNN), the values they show against the losses and the reference formulas, the command line,
plot_losses and the results bar chart."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.image import imread
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmkd  # noqa: F401
from mmkd.datasets.toy_shapes import make_toy_shapes
from mmkd.models.losses import (ChannelWiseDivergence, DeFeatLoss, DKDLoss, FGDLoss, GFLLDLoss,
                                HCLLoss, MGDLoss, PKDLoss)
from mmkd.visualization import figure_px, plot_results, results_chart_px
from mmkd.visualization.distill_scene import INITIAL_STUDENT, RANDOM_TEACHER, DistillScene
from mmkd.visualization.figures import BANNER_COLORS, BANNER_IN, DPI
from mmkd.visualization.pictures import PICTURES, make_pictures
from _toy import REPO, tiny_toy_cfg
from oracles import cwd_oracle, dkd_oracle, hcl_oracle, mgd_oracle, pkd_oracle, vlr_oracle

pytestmark = pytest.mark.timeout(900)
GFL_TOY = osp.join(REPO, 'configs/toy/mgd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
FRCNN_TOY = osp.join(
    REPO, 'configs/toy/reviewkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py')
IMAGE = 'val/00001.png'  # four objects
RTOL = 1e-4


def load_tool(name):
    path = osp.join(REPO, 'tools', 'analysis_tools', name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def check_png(path, size):
    """A non-blank PNG of ``size`` = (width, height) pixels; returns its RGB pixels."""
    assert osp.isfile(path), path
    img = imread(path)
    assert (img.shape[1], img.shape[0]) == size, (path, img.shape, size)
    flat = img.reshape(-1, img.shape[-1])
    assert (flat != flat[0]).any(), f'{path}: all pixels equal'
    return img[..., :3]


def banner_kinds(img) -> list:
    """The banner colours found, strip by strip, at the top of a picture (the middle of each
    strip at both ends, away from the text in its centre)."""
    kinds = []
    for i in range(4):
        row = img[int((i + 0.5) * BANNER_IN * DPI), [0, 1, 2, -3, -2, -1]]
        kind = [k for k, (bg, _) in BANNER_COLORS.items() if np.abs(row - rgb(bg)).max() < 0.02]
        if not kind:
            break
        kinds.append(kind[0])
    return kinds


def close(a, b, rtol=RTOL):
    a, b = float(a), float(b)
    assert abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12), (a, b)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('vis')
    data = str(root / 'data')
    make_toy_shapes(data, num_train=2, num_val=3)
    init_default_scope('mmdet')
    for name, config in (('gfl', GFL_TOY), ('frcnn', FRCNN_TOY)):
        tiny_toy_cfg(config, data, num_train=2, num_val=3).dump(str(root / f'{name}.py'))
    return root


def build_scene(toy, name, **kwargs):
    torch.manual_seed(0)
    return DistillScene.from_config(
        Config.fromfile(str(toy / f'{name}.py')), str(toy / 'data' / IMAGE),
        ann_file=str(toy / 'data' / 'annotations' / 'instances_val.json'), **kwargs)


@pytest.fixture(scope='module')
def gfl(toy, tmp_path_factory):
    scene = build_scene(toy, 'gfl')
    out = tmp_path_factory.mktemp('gfl_pictures')
    return scene, make_pictures(scene, str(out), cwd_top=1), out


@pytest.fixture(scope='module')
def frcnn(toy, tmp_path_factory):
    scene = build_scene(toy, 'frcnn')
    out = tmp_path_factory.mktemp('frcnn_pictures')
    return scene, make_pictures(scene, str(out), cwd_top=1), out


def check_files(pictures, out, expected):
    """Every file of ``expected`` (name -> rows, cols, panel inches, picture-own banners) at
    its size, with the random-teacher and initial-student banners on top of it."""
    files = sorted(osp.basename(f) for p in pictures.values() for f in p.files)
    assert files == sorted(expected)
    for name, (rows, cols, panel, own) in expected.items():
        img = check_png(str(out / name), figure_px(rows, cols, panel, 2 + own))
        assert banner_kinds(img) == ['warning', 'note'] + ['note'] * own, name
    for pic in pictures.values():
        if pic.skipped is None:
            assert pic.banners[:2] == [RANDOM_TEACHER, INITIAL_STUDENT]


# ----------------------------------------------------------------------------- both families
def test_gfl_every_picture(gfl):
    scene, pictures, out = gfl
    assert [lv.stride for lv in scene.levels] == [8, 16, 32, 64, 128]
    assert scene.levels[-1].hw == (1, 1)
    assert 'two-stage' in pictures['dkd'].skipped
    assert all(pictures[k].skipped is None for k in PICTURES if k != 'dkd')
    # the 1x1 P7 is left out of the spatial pictures, with a note
    for key in ('feature_energy', 'fgd', 'cwd', 'pkd', 'mgd'):
        assert any(n.startswith('P7 left out: 1x1') for n in pictures[key].notes), key
    expected = {  # file -> rows, cols, panel inches, banners of the picture itself
        '00_image_gt.png': (1, 1, 6.0, 0), '01_feature_energy.png': (4, 3, 3.0, 0),
        '02_fgd.png': (4, 5, 3.0, 0), '03_defeat.png': (2, 5, 3.0, 1),
        '04_ld_regions.png': (1, 2, 5.0, 0), '05_ld_levels.png': (2, 5, 3.0, 0),
        '07_pkd.png': (4, 5, 3.0, 0), '08_mgd.png': (4, 5, 3.0, 1),
        '09_reviewkd_abf.png': (5, 5, 3.0, 1), '10_reviewkd_hcl.png': (5, 4, 3.0, 1),
        **{f'06_cwd_P{k}.png': (2, 2, 3.0, 0) for k in range(3, 7)}}
    check_files(pictures, out, expected)
    # the config's MGD connectors (untrained: no checkpoint), ReviewKD's defaults
    assert pictures['mgd'].banners[2][1] == 'MGD connector: untrained (no distillation checkpoint)'
    assert 'defaults' in pictures['reviewkd'].banners[2][1]


def test_frcnn_every_picture(frcnn):
    scene, pictures, out = frcnn
    assert [lv.stride for lv in scene.levels] == [4, 8, 16, 32, 64]
    assert 'one-stage' in pictures['ld'].skipped
    assert all(pictures[k].skipped is None for k in PICTURES if k != 'ld')
    num_rois = len(pictures['dkd'].numbers['labels'])
    assert 1 <= num_rois <= 8
    expected = {
        '00_image_gt.png': (1, 1, 6.0, 0), '01_feature_energy.png': (5, 3, 3.0, 0),
        '02_fgd.png': (5, 5, 3.0, 0), '03_defeat.png': (2, 5, 3.0, 1),
        '07_pkd.png': (5, 5, 3.0, 0), '08_mgd.png': (5, 5, 3.0, 1),
        '09_reviewkd_abf.png': (5, 5, 3.0, 1), '10_reviewkd_hcl.png': (5, 4, 3.0, 1),
        '11_dkd.png': (3, num_rois, 2.5, 0),
        **{f'06_cwd_P{k}.png': (2, 2, 3.0, 0) for k in range(2, 7)}}
    check_files(pictures, out, expected)
    assert pictures['reviewkd'].numbers['source'] == 'the config\'s loss_hcl'
    assert pictures['reviewkd'].banners[2][1] == \
        'ABF connector: untrained (no distillation checkpoint)'


# ----------------------------------------------------------------------------- the values shown
def test_cwd_values_are_the_loss(gfl):
    scene, pictures, _ = gfl
    values = pictures['cwd'].values
    assert sorted(values) == ['P3', 'P4', 'P5', 'P6']
    total = 0.
    for level in values.values():
        fs, ft = scene.feats_S[level['index']], scene.feats_T[level['index']]
        c = ft.shape[1]
        # the channel-KL map sums to the loss (the loss module and the official formula)
        close(level['per_channel'].sum() / c, ChannelWiseDivergence()(fs, ft))
        close(level['per_channel'].sum() / c, cwd_oracle(fs, ft))
        close(level['per_position'].sum(), level['per_channel'].sum())
        total += float(level['level_loss'])
    # the 1x1 level left out adds nothing: the whole neck's loss is the shown levels' sum
    close(total, ChannelWiseDivergence()(scene.feats_S, scene.feats_T))


def test_fgd_and_defeat_values_are_the_loss(gfl, frcnn):
    for scene, pictures, _ in (gfl, frcnn):
        gt, metas = [scene.sample.gt_instances], [scene.sample.metainfo]
        for level in pictures['fgd'].values.values():
            i = level['index']
            width = scene.feats_S[i].shape[1]  # 256 (GFL) or 128 (the toy Faster R-CNN)
            terms = FGDLoss(width, width)(scene.feats_S[i], scene.feats_T[i], gt, metas)
            close(level['fg'], terms['fg'])
            close(level['bg'], terms['bg'])
        defeat = pictures['defeat'].values
        terms = defeat['loss'](scene.feats_S, scene.feats_T, gt, metas)
        assert isinstance(defeat['loss'], DeFeatLoss)
        close(defeat['fg'], terms['fg'])
        close(defeat['bg'], terms['bg'])
        assert defeat['fg'] > 0 and defeat['bg'] > 0


def test_pkd_values_are_the_loss(frcnn):
    scene, pictures, _ = frcnn
    for level in pictures['pkd'].values.values():
        fs, ft = scene.feats_S[level['index']], scene.feats_T[level['index']]
        close(level['level_loss'], PKDLoss()(fs, ft))
        close(level['level_loss'], pkd_oracle(fs, ft))
        # the r shown is the Pearson correlation of each channel
        for ch in (0, 7):
            r = np.corrcoef(fs[0, ch].flatten().numpy(), ft[0, ch].flatten().numpy())[0, 1]
            close(level['r'][ch], r, 1e-4)


def test_mgd_shows_the_connector_s_own_mask(gfl):
    scene, pictures, _ = gfl
    for level in pictures['mgd'].values.values():
        connector, mask = level['connector'], level['mask']
        assert connector is scene.model.distiller.connectors[f'mgd_fpn{level["index"]}']
        ft = scene.feats_T[level['index']]
        # the generated feature is the generation of exactly the masked student shown
        gen = connector.generation(level['aligned'] * mask)
        assert torch.allclose(gen, level['generated'], atol=1e-6)
        assert set(mask.unique().tolist()) <= {0.0, 1.0} and 0 < mask.mean() < 1
        close(level['level_loss'], MGDLoss()(level['generated'], ft))
        close(level['level_loss'], mgd_oracle(scene.feats_S[level['index']], ft, mask,
                                              connector.state_dict()))


def test_reviewkd_values_are_the_loss(frcnn):
    scene, pictures, _ = frcnn
    values = pictures['reviewkd'].values
    connector = values['connector']
    assert connector is scene.model.distiller.connectors['review']
    close(values['total'], HCLLoss(loss_weight=1.2)(values['outs'], scene.feats_T))
    close(values['total'], hcl_oracle(values['outs'], scene.feats_T, 1.2))
    # the attention of P5 (fused with the residual of P6), recomputed from the layers
    abfs, feats = connector.abfs, scene.feats_S
    with torch.no_grad():
        coarse = abfs[4].conv1(feats[4])
        x = abfs[3].conv1(feats[3])
        z = abfs[3].att_conv(torch.cat([x, F.interpolate(coarse, x.shape[-2:])], 1))
    assert values['attention'][4] is None
    assert torch.allclose(values['attention'][3], z, atol=1e-6)


def test_dkd_values_are_the_loss(frcnn):
    scene, pictures, _ = frcnn
    values = pictures['dkd'].values
    logits_S, logits_T, labels = values['logits_S'], values['logits_T'], values['labels']
    num_classes = scene.model.student.roi_head.bbox_head.num_classes
    assert (labels < num_classes).any() and (labels == num_classes).any()  # fg and bg RoIs
    close(values['total'], DKDLoss()(logits_S, logits_T, labels))
    close(values['total'], dkd_oracle(logits_S, logits_T, labels, 1.0, 1.0, 0.25))
    p_T = torch.softmax(logits_T, 1)
    assert torch.allclose(values['terms'].binary_T[:, 0], p_T.gather(1, labels[:, None])[:, 0])


def test_ld_regions_are_the_loss_s(gfl, toy):
    scene, pictures, _ = gfl
    ld = pictures['ld']
    with open(toy / 'data' / 'annotations' / 'instances_val.json') as f:
        coco = json.load(f)
    img_id = next(im['id'] for im in coco['images'] if im['file_name'] == IMAGE)
    gt = torch.tensor([[x, y, x + w, y + h] for a in coco['annotations']
                       if a['image_id'] == img_id for x, y, w, h in [a['bbox']]])
    levels = ld.values['levels']
    anchors = torch.cat([torch.from_numpy(lv['anchors']) for lv in levels])
    region = vlr_oracle(anchors, [len(lv['anchors']) for lv in levels], gt, topk=9, gamma=0.25)
    assert ld.numbers['vlr_anchors'] == int((region > 0).sum()) > 0
    shown = np.concatenate([lv['vlr'] for lv in levels])
    assert np.allclose(shown, region.numpy(), atol=1e-6)
    assert ld.numbers['main_anchors'] > 0


def test_ld_targets_with_vlr_argument():
    """``with_vlr`` of ``get_targets`` overrides the loss's own switch (the picture's use)."""
    from mmengine.structures import InstanceData
    gt = [InstanceData(bboxes=torch.tensor([[10., 12., 60., 50.], [70., 64., 120., 126.]]),
                       labels=torch.tensor([0, 2]))]
    metas = [dict(img_shape=(128, 128), pad_shape=(128, 128))]
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    with_vlr = GFLLDLoss(num_classes=4).get_targets(sizes, gt, metas)
    without = GFLLDLoss(num_classes=4, with_vlr=False)
    assert sum(float(v.sum()) for v in without.get_targets(sizes, gt, metas)[3]) == 0
    for a, b in zip(without.get_targets(sizes, gt, metas, with_vlr=True)[3], with_vlr[3]):
        assert torch.equal(a, b)
    assert sum(float(v.sum()) for v in with_vlr[3]) > 0


# ----------------------------------------------------------------------------- command line
def test_command_line_with_a_student_checkpoint(gfl, toy, tmp_path):
    """The tool loads a training checkpoint strictly (student and connectors), and a file that
    does not fit is refused."""
    scene = gfl[0]
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=scene.model.state_dict()), ckpt)
    tool = load_tool('visualize_distill')
    out = tmp_path / 'out'
    summary = tool.main([str(toy / 'gfl.py'), '--image', str(toy / 'data' / IMAGE), '--out',
                         str(out), '--student-ckpt', str(ckpt), '--pictures', 'image_gt', 'mgd',
                         'dkd'])
    assert json.loads((out / 'summary.json').read_text()) == json.loads(json.dumps(summary))
    pictures = summary['pictures']
    assert pictures['dkd'] == {'skipped': pictures['dkd']['skipped']}
    # a random teacher still, but the student and the connectors are trained weights
    assert pictures['mgd']['banners'] == [RANDOM_TEACHER[1]]
    img = check_png(str(out / '08_mgd.png'), figure_px(4, 5, 3.0, 1))
    assert banner_kinds(img) == ['warning']
    assert summary['num_gt'] == 4 and pictures['image_gt']['files'] == ['00_image_gt.png']
    assert summary['teacher_ckpt'] is None and summary['student_ckpt'] == str(ckpt)

    state = scene.model.state_dict()
    state.pop(next(k for k in state if k.startswith('distiller.connectors.')))
    torch.save(dict(state_dict=state), ckpt)
    with pytest.raises(RuntimeError, match='distiller weights do not fit'):
        tool.main([str(toy / 'gfl.py'), '--image', str(toy / 'data' / IMAGE), '--out',
                   str(out), '--student-ckpt', str(ckpt), '--pictures', 'image_gt'])


# ----------------------------------------------------------------------------- training curves
def write_log(work_dir, stamp, records):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    (vis / f'{stamp}.json').write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_plot_losses_on_synthetic_logs(tmp_path):
    tool = load_tool('plot_losses')
    distilled, baseline = tmp_path / 'distilled', tmp_path / 'baseline'
    records = []
    for epoch in (1, 2):
        for it in (2, 4):
            step = (epoch - 1) * 4 + it
            records.append({'lr': 0.01, 'loss': 10.0 / step, 'student.loss_cls': 1.0 * step,
                            'distill.loss_fgd_fpn0': 0.5 * step, 'distill.loss_fgd_fpn10': 2.0,
                            'time': 1.0, 'epoch': epoch, 'iter': step, 'step': step})
        # COCO writes -1 for "no objects of this size": not a value to plot
        records.append({'coco/bbox_mAP': 0.1 * epoch, 'coco/bbox_mAP_50': 0.3 * epoch,
                        'coco/bbox_mAP_s': -1.0 if epoch == 1 else 0.05, 'time': 0.5,
                        'step': epoch})
    write_log(distilled, '20260101_000000', records)
    write_log(baseline, '20260101_000000', [
        {'loss': 3.0, 'loss_cls': 7.0, 'epoch': 1, 'iter': 4, 'step': 4},
        {'coco/bbox_mAP': 0.05, 'coco/bbox_mAP_s': -1.0, 'step': 1}])
    out = tmp_path / 'new' / 'folder' / 'curves.png'  # --out's folder is created
    result = tool.main([str(distilled), str(baseline), '--out', str(out)])
    assert result['keys'] == ['loss', 'loss_cls', 'distill.loss_fgd_fpn0',
                              'distill.loss_fgd_fpn10', 'coco/bbox_mAP', 'coco/bbox_mAP_50',
                              'coco/bbox_mAP_s']
    curves = result['curves']
    # the first panel is the total loss and says so
    assert result['titles']['loss'].startswith('loss (total')
    assert result['titles']['loss_cls'].startswith('loss_cls (task')
    assert result['titles']['distill.loss_fgd_fpn0'].startswith('distill.loss_fgd_fpn0 (distill')
    assert curves['loss']['distilled'] == dict(x=[2, 4, 6, 8], y=[5.0, 2.5, 10 / 6, 1.25])
    assert curves['loss']['baseline'] == dict(x=[4], y=[3.0])
    assert curves['distill.loss_fgd_fpn0']['distilled'] == dict(x=[2, 4, 6, 8],
                                                                y=[1.0, 2.0, 3.0, 4.0])
    # student.loss_cls and the baseline's loss_cls share a panel
    assert curves['loss_cls']['baseline'] == dict(x=[4], y=[7.0])
    assert curves['loss_cls']['distilled']['y'] == [2.0, 4.0, 6.0, 8.0]
    # validation at the end of each epoch (its last logged iteration); -1 is left out
    assert curves['coco/bbox_mAP']['distilled'] == dict(x=[4, 8], y=[0.1, 0.2])
    assert curves['coco/bbox_mAP']['baseline'] == dict(x=[4], y=[0.05])
    assert curves['coco/bbox_mAP_s'] == {'distilled': dict(x=[8], y=[0.05])}
    check_png(str(out), tool.figure_px(7))


def test_results_chart(tmp_path):
    rows = {'teacher_x50': dict(role='teacher', AP=40.0, AP50=70.0, AP75=41.0),
            'gfl_r18': dict(role='baseline', AP=30.0, AP50=60.0, AP75=28.0),
            'fgd_r18': dict(role='fgd', AP=33.0, AP50=62.0, AP75=31.0)}
    out = plot_results(rows, str(tmp_path / 'results.png'))
    img = check_png(out, results_chart_px())
    # the bars are drawn: the role colours appear
    for color in ('#4c72b0', '#8c8c8c', '#dd8452'):
        assert (np.abs(img - rgb(color)).max(axis=-1) < 0.02).sum() > 100, color
