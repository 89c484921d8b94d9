"""The user's path on the toy set: train, resume, test (COCO mAP), export, DDP on CPU."""
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from _toy import PKD_TOY, REPO, free_port, run_failure_output, tiny_toy_cfg

PY = sys.executable
pytestmark = pytest.mark.timeout(900)


def run_status(*args, env=None):
    """Run a command in the repository; return (exit code, stdout + stderr)."""
    proc = subprocess.run([*args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))
    return proc.returncode, proc.stdout + proc.stderr


def run(*args, env=None):
    code, out = run_status(*args, env=env)
    assert code == 0, f'{args} failed:\n{out[-4000:]}'
    return out


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """A tiny PKD toy config (own data set, random toy teacher weights) written to a file."""
    root = tmp_path_factory.mktemp('e2e')
    init_default_scope('mmdet')
    cfg = tiny_toy_cfg(PKD_TOY, str(root / 'data'), num_train=8, num_val=4, epochs=2)
    teacher = MODELS.build(mmkd.models.algorithms.model_cfg.expand_model_cfg(cfg.model.teacher))
    torch.save(dict(state_dict=teacher.state_dict()), root / 'teacher.pth')
    cfg.model.teacher_ckpt = str(root / 'teacher.pth')
    # a pipeline test, not a quality test: two epochs from scratch may leave every score under
    # GFL's 0.05 threshold, and an empty result set prints no mAP; keep all boxes, fix the seed
    cfg.model.architecture.test_cfg = dict(score_thr=0.0)
    cfg.randomness = dict(seed=0)
    cfg.dump(str(root / 'pkd_tiny.py'))
    return root


def test_train_test_and_export(toy):
    work = toy / 'train'
    out = run(PY, 'tools/train.py', str(toy / 'pkd_tiny.py'), '--work-dir', str(work))
    assert 'distill.loss_pkd_fpn0' in out and 'Epoch(train) [2][4/4]' in out
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu')
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('architecture.') for k in keys)
    assert not any(k.startswith('teacher.') for k in keys), 'the frozen teacher was saved'
    assert 'optimizer' in ckpt

    # the student alone is tested: the teacher's checkpoint is not read (here: not there)
    out = run(PY, 'tools/test.py', str(toy / 'pkd_tiny.py'), str(work / 'epoch_2.pth'),
              '--work-dir', str(toy / 'test'), '--out', str(toy / 'student_only.pkl'),
              '--cfg-options', f'model.teacher_ckpt={toy / "no_such_teacher.pth"}')
    assert 'teacher not built' in out
    assert re.search(r'coco/bbox_mAP: -?[\d.]+', out), out[-2000:]
    # ... and predicts exactly what the whole distillation model predicts (mmrazor's way)
    run(PY, 'tools/test.py', str(toy / 'pkd_tiny.py'), str(work / 'epoch_2.pth'),
        '--work-dir', str(toy / 'test_full'), '--out', str(toy / 'full.pkl'), '--full-model')
    with open(toy / 'student_only.pkl', 'rb') as a, open(toy / 'full.pkl', 'rb') as b:
        student_only, full = pickle.load(a), pickle.load(b)
    assert len(student_only) == len(full) == 4
    assert sum(len(r['pred_instances']['scores']) for r in full) > 0, 'nothing to compare'
    for s, f in zip(student_only, full):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(s['pred_instances'][key], f['pred_instances'][key])

    run(PY, 'tools/export_student.py', str(work / 'epoch_2.pth'), str(toy / 'student.pth'))
    # mmdet alone (no mmkd import, no mmkd types): its config and its test loop take the file
    script = f'''
import sys
from mmengine.config import Config
from mmengine.runner import Runner
assert "mmkd" not in sys.modules
from mmengine.hub import get_config
cfg = get_config("mmdet::gfl/gfl_r50_fpn_1x_coco.py")
cfg.model.backbone = dict(type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                          norm_cfg=dict(type="BN"), style="pytorch")
cfg.model.neck.in_channels = [64, 128, 256, 512]
cfg.model.bbox_head.num_classes = 4
cfg.model.test_cfg.score_thr = 0.0
root = "{toy / 'data'}/"
cfg.test_dataloader.dataset.update(data_root=root, ann_file="annotations/instances_val.json",
    data_prefix=dict(img=""), metainfo=dict(classes=("circle", "square", "triangle", "cross")))
cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
cfg.test_evaluator.ann_file = root + "annotations/instances_val.json"
cfg.work_dir = "{toy / 'mmdet_only'}"
cfg.load_from = "{toy / 'student.pth'}"
Runner.from_cfg(cfg).test()
assert "mmkd" not in sys.modules
'''
    out = run(PY, '-c', script)
    assert re.search(r'coco/bbox_mAP: -?[\d.]+', out), out[-2000:]
    assert 'unexpected key' not in out and 'missing keys' not in out


def test_resume_continues_at_the_iteration_with_the_optimizer_state(toy):
    work = toy / 'resume'
    run(PY, 'tools/train.py', str(toy / 'pkd_tiny.py'), '--work-dir', str(work),
        '--cfg-options', 'train_cfg.max_epochs=1')
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == 4

    # what --resume does, in process, to look at the state it restores
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(toy / 'pkd_tiny.py'))
    cfg.work_dir, cfg.resume, cfg.load_from = str(toy / 'resume_probe'), True, str(
        work / 'epoch_1.pth')
    runner = Runner.from_cfg(cfg)
    runner.train_loop  # noqa: B018  (built lazily; resume needs it)
    runner.load_or_resume()
    assert runner.iter == 4 and runner.epoch == 1
    restored = runner.optim_wrapper.state_dict()['state']
    assert restored.keys() == ckpt['optimizer']['state'].keys() and restored
    for k, state in ckpt['optimizer']['state'].items():
        torch.testing.assert_close(restored[k]['momentum_buffer'], state['momentum_buffer'])

    out = run(PY, 'tools/train.py', str(toy / 'pkd_tiny.py'), '--work-dir', str(work), '--resume')
    assert re.search(r'resumed epoch: 1, iter: 4', out), out[-3000:]
    assert 'Epoch(train) [2][4/4]' in out and 'Epoch(train) [1]' not in out


def test_two_process_ddp_on_cpu(toy):
    work = toy / 'ddp'
    code, out = run_status(
        'bash', 'tools/dist_train.sh', str(toy / 'pkd_tiny.py'), '2', '--work-dir', str(work),
        '--cfg-options', 'train_cfg.max_epochs=1',
        env=dict(PYTHON=PY, PORT=str(free_port()), OMP_NUM_THREADS='1'))
    assert code == 0, run_failure_output(out)
    # 8 images, 2 per rank and step, 2 ranks: 2 steps per epoch, so both ranks took part
    assert 'Epoch(train) [1][2/2]' in out, out[-3000:]
    assert 'find_unused_parameters' not in out.split('Epoch(train)')[-1]
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(str(toy / 'pkd_tiny.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, str(work / 'epoch_1.pth'), strict=True)


def _logged_losses(work):
    """The per-iteration losses of the one run in ``work`` (mmengine's scalars.json)."""
    import json
    (scalars, ) = work.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(('loss', 'student.', 'distill.'))
             or k == 'grad_norm'} for r in records if 'loss' in r]


def test_a_seeded_run_repeats_exactly(toy):
    """What the main job relies on for README's table to be the table a user gets."""
    runs = []
    for name in ('seeded_a', 'seeded_b'):
        run(PY, 'tools/train.py', str(toy / 'pkd_tiny.py'), '--work-dir', str(toy / name),
            '--cfg-options', 'train_cfg.max_epochs=1', 'randomness.seed=3')
        runs.append(_logged_losses(toy / name))
    assert len(runs[0]) == 4 and runs[0] == runs[1]
