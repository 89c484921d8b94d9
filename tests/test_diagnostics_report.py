"""tools/analysis_tools/analyze_distill.py on two tiny toy runs: its numbers are the logs'.

The distilled run is a tiny PKD run (random teacher, checked with min_map 0 so that its mAP is
recorded, per-class AP on, gradients clipped at 5), the baseline the same narrow GFL alone (no
per-class AP); both 2 epochs of 2 iterations, logged every iteration without running means.
"""
import glob
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from matplotlib.image import imread
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from mmkd.utils.run_logs import RunLogs
from mmkd.visualization import figure_px
from _diagnostics import fresh_names, json_log, tiny_distill_cfg, tiny_teacher_cfg
from _toy import REPO

pytestmark = pytest.mark.timeout(600)
CLIP = 5.0


def load_tool():
    path = osp.join(REPO, 'tools/analysis_tools/analyze_distill.py')
    spec = importlib.util.spec_from_file_location('analyze_distill', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logged_per_iteration(cfg):
    cfg.log_processor.window_size = 1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    init_default_scope('mmdet')
    root = tmp_path_factory.mktemp('report')
    cfg = logged_per_iteration(tiny_distill_cfg(str(root), epochs=2))
    random_teacher = MODELS.build(expand_model_cfg(cfg.model.teacher))
    torch.save(dict(state_dict=random_teacher.state_dict()), root / 'teacher.pth')
    cfg.model.teacher_ckpt = str(root / 'teacher.pth')
    cfg.teacher_check = dict(num_images=8, min_map=0.0, cache_dir=str(root / 'cache'))
    cfg.loss_balance = dict(warmup_iters=2)
    cfg.model.architecture.test_cfg = dict(score_thr=0.0)  # metrics even from a weak student
    cfg.val_evaluator.classwise = True
    cfg.optim_wrapper.clip_grad = dict(max_norm=CLIP)
    cfg.work_dir = str(root / 'pkd_tiny')
    Runner.from_cfg(fresh_names(cfg, 'report_pkd')).train()

    base = logged_per_iteration(tiny_teacher_cfg(str(root), epochs=2))
    base.model.test_cfg.score_thr = 0.0
    base.work_dir = str(root / 'gfl_tiny')
    Runner.from_cfg(fresh_names(base, 'report_base')).train()
    return root


def last_val(work_dir) -> dict:
    return [r for r in json_log(work_dir) if 'coco/bbox_mAP' in r][-1]


def table(text: str, title: str) -> dict:
    """First column -> the other cells of the Markdown table under ``## title``."""
    section = text.split(f'## {title}\n')[1].split('\n## ')[0]
    rows = [line.strip('|').split('|') for line in section.splitlines() if line.startswith('|')]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[2:]}


def test_report_numbers_are_the_logs(runs, tmp_path):
    out = tmp_path / 'out' / 'report.md'
    numbers = load_tool().main([str(runs / 'pkd_tiny'), str(runs / 'gfl_tiny'), '--out',
                                str(out)])
    text = out.read_text()
    distilled, baseline = last_val(runs / 'pkd_tiny'), last_val(runs / 'gfl_tiny')

    # accuracy: the last validation of each run, x100, and the difference
    rows = table(text, 'Accuracy')
    for label, key in (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75', 'bbox_mAP_75'),
                       ('AP small', 'bbox_mAP_s'), ('AP medium', 'bbox_mAP_m')):
        a, b = distilled[f'coco/{key}'], baseline[f'coco/{key}']
        assert rows[label] == [f'{100 * a:.1f}', f'{100 * b:.1f}', f'{100 * (a - b):+.1f}']
    assert rows['AP large'][:2] == ['n/a', 'n/a']  # no large object: -1 in the logs

    # per class: the distilled run's (classwise=True); the baseline's is named as missing
    rows = table(text, 'AP per class')
    for name in ('circle', 'square', 'triangle', 'cross'):
        value = distilled[f'coco/{name}_precision']
        assert rows[name][:2] == ['n/a' if value < 0 else f'{100 * value:.1f}', 'missing']
    assert 'Per-class AP is not in the logs of gfl_tiny' in text
    assert 'test_evaluator.classwise=True' in text

    # the teacher check's mAP, from its record
    with open(glob_one(runs / 'pkd_tiny', 'teacher_check.json')) as f:
        teacher = json.load(f)
    assert numbers['teacher_map'] == teacher['map']
    assert f'coco/bbox_mAP {100 * teacher["map"]:.1f} (x100) on 8 validation image(s)' in text

    # each distillation term at the last iteration against the detection losses logged there
    log = {r['iter']: r for r in json_log(runs / 'pkd_tiny') if 'iter' in r}
    det = sum(v for k, v in log[4].items() if k.startswith('student.loss'))
    rows = table(text, 'Losses')
    for i in range(4):
        term = f'distill.loss_pkd_fpn{i}'
        assert rows[term] == [f'{log[4][term]:.4g}', f'{log[4][term] / det:.3g}']
    # the loss-balance monitor's table, from its record
    rows = table(text, 'Loss balance at the start')
    with open(glob_one(runs / 'pkd_tiny', 'loss_balance.json')) as f:
        balance = {r['term']: r for r in json.load(f)['rows']}
    assert rows['distill.loss_pkd_fpn2'][1] == f'{balance["distill.loss_pkd_fpn2"]["ratio"]:.3g}'

    # gradient norm: logged every iteration here, so the count above max_norm is exact
    norms = [log[i]['grad_norm'] for i in sorted(log)]
    base_log = [r for r in json_log(runs / 'gfl_tiny') if 'iter' in r]
    rows = table(text, 'Gradient norm and clipping')
    assert rows['pkd_tiny'] == [f'{CLIP:g}', f'{sum(n > CLIP for n in norms)} of 4',
                                f'{max(norms):.4g}']
    assert rows['gfl_tiny'][0] == '35'
    assert rows['gfl_tiny'][2] == f'{max(r["grad_norm"] for r in base_log):.4g}'

    # the pictures, next to the report, at their fixed sizes
    assert sorted(os.listdir(out.parent)) == ['report.md', 'report_grad_norm.png',
                                              'report_losses.png']
    assert numbers['loss_panels'] == ['detection losses (sum)', 'loss_pkd_fpn*']
    h, w = imread(str(out.parent / 'report_losses.png')).shape[:2]
    assert (w, h) == figure_px(1, 2)
    assert '![losses](report_losses.png)' in text


def glob_one(work_dir, name):
    (path, ) = glob.glob(osp.join(work_dir, '*', name))
    return path


def test_run_logs_prefer_a_test_run_and_merge_a_resume(tmp_path):
    """Synthetic work dir: a run, its resume from iteration 2, a tools/test.py run."""
    def write(path, records):
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write('\n'.join(json.dumps(r) for r in records) + '\n{"cut')

    work = tmp_path / 'work'
    write(work / '20240101_000000/vis_data/20240101_000000.json',
          [dict(loss=3.0, iter=1, epoch=1, step=1), dict(loss=9.0, iter=2, epoch=1, step=2),
           {'coco/bbox_mAP': 0.1, 'step': 1}])
    write(work / '20240101_010000/vis_data/scalars.json',
          [dict(loss=2.0, iter=2, epoch=1, step=2), dict(loss=1.0, iter=3, epoch=2, step=3),
           {'data_time': 0.1, 'step': 2}])  # a validation without detections
    write(work / '20240101_020000/20240101_020000.json',
          [{'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5}])
    run = RunLogs(str(work))
    assert run.curve('loss') == ([1, 2, 3], [3.0, 2.0, 1.0])
    metrics, source = run.final_metrics()
    assert metrics == {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5}
    assert 'tools/test.py' in source
    os.remove(work / '20240101_020000/20240101_020000.json')
    metrics, source = RunLogs(str(work)).final_metrics()
    assert metrics == {} and 'no metrics' in source
    with pytest.raises(FileNotFoundError, match='no mmengine logs'):
        RunLogs(str(tmp_path))


def test_report_goes_to_the_distilled_work_dir_by_default(runs):
    load_tool().main([str(runs / 'pkd_tiny'), str(runs / 'gfl_tiny')])
    assert (runs / 'pkd_tiny' / 'distill_report.md').is_file()
    assert (runs / 'pkd_tiny' / 'distill_report_losses.png').is_file()
