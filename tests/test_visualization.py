"""The picture tools on the toy set: visualize_distill, plot_losses, the results bar chart."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from mmengine.registry import init_default_scope

import mmkd  # noqa: F401
from mmkd.datasets.toy_shapes import make_toy_shapes
from mmkd.visualization import figure_px, plot_results, results_chart_px
from _toy import REPO, tiny_toy_cfg
from oracles import vlr_oracle

pytestmark = pytest.mark.timeout(600)
FGD_TOY = osp.join(REPO, 'configs/toy/fgd_gfl_x50-32x4d-fpn_gfl_r18-fpn_toy.py')
DEFEAT_TOY = osp.join(
    REPO, 'configs/toy/defeat_faster-rcnn_x50-32x4d-fpn_faster-rcnn_r18-fpn_toy.py')


def load_tool(name):
    path = osp.join(REPO, 'tools', 'analysis_tools', name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_png(path, size):
    """A non-blank PNG of ``size`` = (width, height) pixels."""
    assert osp.isfile(path), path
    img = imread(path)
    assert (img.shape[1], img.shape[0]) == size, (path, img.shape, size)
    flat = img.reshape(-1, img.shape[-1])
    assert (flat != flat[0]).any(), f'{path}: all pixels equal'


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('vis')
    data = str(root / 'data')
    make_toy_shapes(data, num_train=2, num_val=3)
    init_default_scope('mmdet')
    for name, config in (('fgd', FGD_TOY), ('defeat', DEFEAT_TOY)):
        tiny_toy_cfg(config, data, num_train=2, num_val=3).dump(str(root / f'{name}.py'))
    return root


def visualize(toy, name, out):
    image = toy / 'data' / 'val' / '00001.png'  # four objects
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/visualize_distill.py',
                           str(toy / f'{name}.py'), '--image', str(image), '--out', str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(out / 'summary.json') as f:
        return json.load(f), proc.stdout + proc.stderr


def independent_vlr_count(toy, image_name='val/00001.png'):
    """VLR anchors of the GT of one toy image on the student's GFL anchors, from scratch."""
    from mmdet.models.task_modules.prior_generators import anchor_inside_flags
    from mmdet.registry import TASK_UTILS
    with open(toy / 'data' / 'annotations' / 'instances_val.json') as f:
        coco = json.load(f)
    img_id = next(im['id'] for im in coco['images'] if im['file_name'] == image_name)
    gt = torch.tensor([[x, y, x + w, y + h] for a in coco['annotations']
                       if a['image_id'] == img_id for x, y, w, h in [a['bbox']]], dtype=torch.float)
    gen = TASK_UTILS.build(dict(type='mmdet.AnchorGenerator', ratios=[1.0], octave_base_scale=8,
                                scales_per_octave=1, strides=[8, 16, 32, 64, 128]))
    sizes = [(-(-128 // s), -(-128 // s)) for s in (8, 16, 32, 64, 128)]  # 128 px toy images
    anchors = gen.grid_priors(sizes, device='cpu')
    flat = torch.cat(anchors)
    valid = torch.cat(gen.valid_flags(sizes, (128, 128), device='cpu'))
    inside = anchor_inside_flags(flat, valid, (128, 128), -1)
    num_inside = [int(m.sum()) for m in torch.split(inside, [len(a) for a in anchors])]
    region = vlr_oracle(flat[inside], num_inside, gt, topk=9, gamma=0.25)
    return int((region > 0).sum()), len(gt)


def test_visualize_gfl_all_pictures(toy):
    summary, log = visualize(toy, 'fgd', toy / 'out_fgd')
    out = toy / 'out_fgd'
    assert summary['skipped'] == {}, summary['skipped']
    assert 'RANDOM weights' in log  # tiny config: no teacher checkpoint, said loudly
    assert summary['num_gt'] == 4 and summary['strides'] == [8, 16, 32, 64, 128]
    expected = {  # picture -> (rows, cols, panel inches)
        '00_image_gt.png': (1, 1, 6.0), '01_feature_energy.png': (5, 3, 3.0),
        '02_fgd_masks.png': (5, 5, 3.0), '03_defeat_levels.png': (1, 5, 3.0),
        '04_ld_regions.png': (1, 2, 5.0), '05_ld_levels.png': (2, 5, 3.0),
        **{f'06_cwd_P{k}.png': (2, 4, 3.0) for k in range(3, 8)}}
    for name, (rows, cols, panel) in expected.items():
        check_png(str(out / name), figure_px(rows, cols, panel))
    assert sorted(p['file'] for p in summary['pictures'].values()) == sorted(expected)

    # the VLR picture draws exactly vlr_region's anchors
    count, num_gt = independent_vlr_count(toy)
    assert num_gt == 4 and count > 0
    ld = summary['pictures']['ld']
    assert ld['vlr_anchors'] == count and ld['drawn_vlr_boxes'] == count
    assert sum(level['vlr'] for level in ld['levels']) == count
    assert ld['main_anchors'] > 0 and ld['drawn_main_boxes'] == ld['main_anchors']
    # FGD's numbers are those of its own mask code
    fgd = summary['pictures']['fgd']
    assert fgd['source'].startswith('config loss') and fgd['temp'] == 0.5
    assert all(0 < lv['fg_pixels'] <= lv['hw'][0] * lv['hw'][1] for lv in fgd['levels'])
    # DeFeat: every GT on exactly one level
    assert sorted(g for lv in summary['pictures']['defeat']['levels'] for g in lv['gts']) == \
        [0, 1, 2, 3]


def test_visualize_two_stage_skips_ld_with_a_reason(toy):
    summary, _ = visualize(toy, 'defeat', toy / 'out_defeat')
    assert 'ld' in summary['skipped'] and 'one-stage' in summary['skipped']['ld']
    defeat = summary['pictures']['defeat']
    assert defeat['source'] == 'config loss loss_defeat_neck'
    assert [lv['stride'] for lv in defeat['levels']] == [4, 8, 16, 32, 64]
    check_png(str(toy / 'out_defeat' / '03_defeat_levels.png'), figure_px(1, 5))
    check_png(str(toy / 'out_defeat' / '01_feature_energy.png'), figure_px(5, 3))


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
    check_png(out, results_chart_px())
    img = imread(out)[..., :3]
    # the bars are drawn: the role colours appear
    for color in ('#4c72b0', '#8c8c8c', '#dd8452'):
        rgb = np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        assert (np.abs(img - rgb).max(axis=-1) < 0.02).sum() > 100, color
