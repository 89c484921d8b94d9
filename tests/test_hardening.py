"""Hardening: faults survived, bad input refused at start-up with the fix named.

Training runs are tiny toy runs (a few 128x128 images, 2-4 iterations) through the CLI, as in
tests/test_toy_end_to_end.py, or in process through mmengine's Runner.
"""
import copy
import glob
import io
import json
import math
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from mmkd.engine import NonFiniteLossError
from mmkd.engine import atomic_checkpoint
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from _toy import PKD_TOY, REPO, run_failure_output, tiny_batch, tiny_toy_cfg

PY = sys.executable
LD_TOY = osp.join(REPO, 'configs/toy/ld_gfl_x50-32x4d-fpn_gfl_r18-fpn_toy.py')
MGD_TOY = osp.join(REPO, 'configs/toy/mgd_gfl_x50-32x4d-fpn_gfl_r18-fpn_toy.py')
METHODS = dict(pkd=PKD_TOY, ld=LD_TOY)  # one feature, one response method
pytestmark = pytest.mark.timeout(300)


def run(*args, env=None, check=True):
    env = dict(os.environ, PYTHONPATH=osp.join(REPO, 'tests'), OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run([*args], cwd=REPO, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, f'{args} failed:\n{out[-4000:]}'
    return proc.returncode, out


def hardening_cfg(config: str, root, num_train: int, epochs: int, batch_size: int = 2,
                  hooks=()) -> Config:
    """A tiny, reproducible, validation-free toy config with a saved random teacher."""
    init_default_scope('mmdet')
    cfg = tiny_toy_cfg(config, str(root / 'data'), num_train=num_train, num_val=2, epochs=epochs,
                       batch_size=batch_size)
    # reproducible across resume: seeded, deterministic, and no random augmentation (the flip
    # draws from numpy's global RNG, whose state mmengine does not checkpoint)
    cfg.randomness = dict(seed=0, deterministic=True)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step.type == 'RandomFlip':
            step.prob = 0.0
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.custom_imports = dict(imports=['mmkd', '_hardening_hooks'], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type=h) for h in hooks]
    teacher = MODELS.build(expand_model_cfg(cfg.model.teacher))
    torch.save(dict(state_dict=teacher.state_dict()), root / 'teacher.pth')
    cfg.model.teacher_ckpt = str(root / 'teacher.pth')
    return cfg


def read_losses(work) -> dict:
    with open(osp.join(work, 'losses.jsonl')) as f:
        return {r['iter']: r['losses'] for r in map(json.loads, f)}


# ------------------------------------------------------------------ SIGKILL, then --resume
@pytest.mark.parametrize('method', sorted(METHODS))
def test_sigkill_then_resume_reaches_the_same_losses(method, tmp_path):
    # 4 images, batch 2: 2 iterations per epoch, 2 epochs, a checkpoint after each epoch
    cfg = hardening_cfg(METHODS[method], tmp_path, num_train=4, epochs=2,
                        hooks=('LossRecorderHook', 'KillAtIterHook'))
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.dump(str(tmp_path / 'cfg.py'))
    train = (PY, 'tools/train.py', str(tmp_path / 'cfg.py'), '--work-dir')

    run(*train, str(tmp_path / 'straight'))
    reference = read_losses(tmp_path / 'straight')
    assert sorted(reference) == [1, 2, 3, 4]

    # killed after iteration 3: epoch_1.pth (iteration 2) is the last checkpoint
    work = tmp_path / 'killed'
    rc, out = run(*train, str(work), env=dict(MMKD_KILL_AT_ITER='3'), check=False)
    assert rc == -9, out[-3000:]
    assert sorted(read_losses(work)) == [1, 2, 3]
    assert open(work / 'last_checkpoint').read().strip().endswith('epoch_1.pth')
    os.remove(work / 'losses.jsonl')

    _, out = run(*train, str(work), '--resume')
    assert 'resumed epoch: 1, iter: 2' in out, out[-3000:]
    resumed = read_losses(work)
    assert sorted(resumed) == [3, 4]
    distill = [k for k in reference[3] if k.startswith('distill.')]
    assert distill, reference[3]
    for it in (3, 4):
        assert resumed[it].keys() == reference[it].keys()
        for key, value in reference[it].items():
            assert math.isclose(resumed[it][key], value, rel_tol=1e-6, abs_tol=1e-8), \
                (it, key, resumed[it][key], value)


# ------------------------------------------------------------------ atomic checkpoint writes
def _failing_torch_save(real_save, fail_on_call: int):
    calls = [0]

    def fake(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] != fail_on_call:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])  # half written, then ...
        raise OSError(28, 'No space left on device (simulated)')

    return fake


def test_interrupted_checkpoint_write_keeps_the_old_file(tmp_path, monkeypatch):
    import mmengine.runner.runner as runner_module
    assert runner_module.save_checkpoint is atomic_checkpoint.save_checkpoint
    path = tmp_path / 'epoch_1.pth'
    runner_module.save_checkpoint(dict(state_dict=dict(w=torch.ones(1000))), str(path))
    before = path.read_bytes()
    monkeypatch.setattr(torch, 'save', _failing_torch_save(torch.save, 1))
    with pytest.raises(OSError, match='No space left'):
        runner_module.save_checkpoint(dict(state_dict=dict(w=torch.zeros(1000))), str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['epoch_1.pth'], 'the temporary file was left behind'


def test_failed_save_in_training_keeps_last_checkpoint_good(tmp_path, monkeypatch):
    from mmengine.runner import Runner
    cfg = hardening_cfg(PKD_TOY, tmp_path, num_train=2, epochs=2)
    # max_keep_ckpts=1: mmengine deletes the old checkpoint before writing the new one
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    monkeypatch.setattr(torch, 'save', _failing_torch_save(torch.save, 2))
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    monkeypatch.undo()
    work = tmp_path / 'work'
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth') or '.tmp' in p) == \
        ['epoch_1.pth']
    last = open(work / 'last_checkpoint').read().strip()
    assert last.endswith('epoch_1.pth')
    ckpt = torch.load(last, map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and 'optimizer' in ckpt


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_a_killed_saves_temporary_file_is_removed_by_the_next_save(tmp_path):
    import mmengine.runner.runner as runner_module
    path = tmp_path / 'epoch_2.pth'
    stale = tmp_path / f'.epoch_2.pth.{_dead_pid()}.tmp'  # left by a SIGKILLed save
    stale.write_bytes(b'half a checkpoint')
    live = tmp_path / f'.epoch_2.pth.{os.getppid()}.tmp'  # a writer that is still running
    live.write_bytes(b'in progress')
    other = tmp_path / f'.epoch_3.pth.{_dead_pid()}.tmp'  # another checkpoint's: not ours
    other.write_bytes(b'x')
    runner_module.save_checkpoint(dict(state_dict=dict(w=torch.ones(3))), str(path))
    assert sorted(os.listdir(tmp_path)) == sorted(['epoch_2.pth', live.name, other.name])


@pytest.mark.parametrize('content', ['', '/nowhere/epoch_9.pth', 'epoch_'])
def test_resume_falls_back_when_last_checkpoint_is_damaged(tmp_path, content):
    from mmengine.runner import find_latest_checkpoint
    from mmengine.runner.runner import find_latest_checkpoint as used_by_runner
    assert find_latest_checkpoint is used_by_runner is atomic_checkpoint.find_latest_checkpoint
    for name in ('epoch_2.pth', 'epoch_10.pth', 'epoch_9.pth', '.epoch_11.pth.1.tmp'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(content)
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_10.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_9.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_9.pth')  # sound: kept
    os.remove(tmp_path / 'last_checkpoint')
    assert find_latest_checkpoint(str(tmp_path)) is None  # mmengine's behaviour: nothing to resume


# ------------------------------------------------------------------ NaN/Inf loss guard
@pytest.fixture(scope='module')
def guard_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp('guard')
    return hardening_cfg(PKD_TOY, root, num_train=6, epochs=1), root


def _nan_at(runner, key: str, calls: set, snapshots: dict):
    """Make distill loss ``key`` return NaN on the given calls; snapshot weights each call."""
    loss = runner.model.distiller.distill_losses[key]
    forward, count = loss.forward, [0]

    def patched(*args, **kwargs):
        count[0] += 1
        snapshots[count[0]] = {n: p.detach().clone() for n, p in runner.model.named_parameters()}
        value = forward(*args, **kwargs)
        return value * float('nan') if count[0] in calls else value

    loss.forward = patched


def test_nan_distill_loss_stops_training_naming_the_loss_and_level(guard_cfg):
    from mmengine.runner import Runner
    cfg, root = copy.deepcopy(guard_cfg[0]), guard_cfg[1]
    assert [h.type for h in cfg.custom_hooks][0] == 'mmkd.DistillLossGuardHook'  # on by default
    cfg.work_dir = str(root / 'error')
    runner = Runner.from_cfg(cfg)
    snapshots: dict = {}
    _nan_at(runner, 'loss_pkd_fpn2', {2}, snapshots)
    with pytest.raises(NonFiniteLossError,
                       match=r'Iteration 2: non-finite loss \(distill\.loss_pkd_fpn2 = nan\)'
                       r'.*weights are those of the last good step.*action=.skip.'):
        runner.train()
    for name, p in runner.model.named_parameters():  # step 2 changed nothing
        assert torch.equal(p, snapshots[2][name]), name
        assert torch.isfinite(p).all()


def test_nan_distill_loss_skip_mode_skips_only_that_step(guard_cfg):
    from mmengine.runner import Runner
    cfg, root = copy.deepcopy(guard_cfg[0]), guard_cfg[1]
    cfg.custom_hooks = [dict(type='mmkd.DistillLossGuardHook', action='skip')]
    cfg.work_dir = str(root / 'skip')
    runner = Runner.from_cfg(cfg)
    snapshots: dict = {}
    _nan_at(runner, 'loss_pkd_fpn1', {2}, snapshots)
    runner.train()  # 3 iterations, the second skipped
    assert sorted(snapshots) == [1, 2, 3]
    guard = [h for h in runner.hooks if type(h).__name__ == 'DistillLossGuardHook'][0]
    assert guard.skipped_steps == 1
    changed = lambda a, b: any(not torch.equal(a[n], b[n]) for n in a)  # noqa: E731
    assert changed(snapshots[1], snapshots[2])  # step 1 updated the weights
    assert not changed(snapshots[2], snapshots[3])  # step 2 was skipped
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    log = open(glob.glob(str(root / 'skip' / '*' / '*.log'))[0]).read()
    assert 'iteration 2: non-finite loss (distill.loss_pkd_fpn1 = nan); this optimizer step is ' \
        'skipped' in log


# ------------------------------------------------------------------ AMP (bfloat16 autocast)
@pytest.mark.parametrize('method', sorted(METHODS))
def test_autocast_bf16_distill_losses_are_fp32_and_finite(method, tmp_path):
    init_default_scope('mmdet')
    cfg = tiny_toy_cfg(METHODS[method], str(tmp_path))
    algo = MODELS.build(cfg.model)
    algo.train()
    batch = tiny_batch(algo, size=128)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = algo(**batch, mode='loss')
    distill = {k: v for k, v in losses.items() if k.startswith('distill.')}
    assert distill
    for key, value in distill.items():
        assert value.dtype == torch.float32, (key, value.dtype)
        assert torch.isfinite(value).all(), key

    # the models did run in bfloat16
    def tensors(x):
        if isinstance(x, torch.Tensor):
            return [x]
        return [t for v in x for t in tensors(v)] if isinstance(x, (list, tuple)) else []

    recorded = [r.get_record_data() for r in algo.distiller.student_recorders.recorders.values()
                if type(r).__name__ == 'ModuleOutputsRecorder']
    assert any(t.dtype == torch.bfloat16 for t in tensors(recorded))


# ------------------------------------------------------------------ 2-process DDP (gloo)
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('method', sorted(METHODS))
def test_two_process_ddp_ranks_end_with_the_same_weights(method, tmp_path):
    # 8 images, 2 per rank and step: 2 steps
    cfg = hardening_cfg(METHODS[method], tmp_path, num_train=8, epochs=1,
                        hooks=('SaveRankStateHook', ))
    cfg.default_hooks.checkpoint.interval = 100  # no checkpoint needed
    cfg.dump(str(tmp_path / 'cfg.py'))
    code, out = run('bash', 'tools/dist_train.sh', str(tmp_path / 'cfg.py'), '2', '--work-dir',
                    str(tmp_path / 'work'), env=dict(PYTHON=PY, PORT=str(_free_port())),
                    check=False)
    assert code == 0, run_failure_output(out)
    assert 'Epoch(train) [1][2/2]' in out, out[-3000:]
    # neither torch's warning (True but none unused) nor its error (False but some unused)
    assert 'find_unused_parameters=True' not in out and 'unused parameter' not in out, out[-3000:]
    rank0 = torch.load(tmp_path / 'work' / 'rank0.pth', map_location='cpu')
    rank1 = torch.load(tmp_path / 'work' / 'rank1.pth', map_location='cpu')
    assert rank0.keys() == rank1.keys() and rank0
    # weights: the same on both ranks. BN running statistics are per-rank buffers (DDP with
    # broadcast_buffers=False, mmdet's default; SyncBN would share them), so they are not compared
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    weights = [k for k in rank0 if not k.endswith(buffers)]
    assert len(weights) > 100
    for key in weights:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)


# ------------------------------------------------------------------ bad input, at start-up
@pytest.fixture(scope='module')
def toy_models(tmp_path_factory):
    init_default_scope('mmdet')
    root = str(tmp_path_factory.mktemp('models'))
    return {m: tiny_toy_cfg(c, root).model for m, c in METHODS.items()}


def test_channel_mismatch_without_connector_gives_both_shapes(toy_models):
    cfg = copy.deepcopy(toy_models['pkd'])
    cfg.architecture.update(neck=dict(out_channels=128), bbox_head=dict(in_channels=128))
    with pytest.raises(ValueError, match=(
            r"'loss_pkd_fpn0' \(PKDLoss\): student and teacher channels differ and no connector"
            r".*preds_S .*shape \(2, 128, 16, 16\), preds_T .*shape \(2, 256, 16, 16\)"
            r".*Fix: add a connector.*ConvModuleConnector.*in_channel=128, out_channel=256")):
        MODELS.build(cfg)
    # the fix the message gives works
    cfg.distiller.connectors = {
        f'align{i}': dict(type='mmrazor.ConvModuleConnector', in_channel=128, out_channel=256,
                          kernel_size=1, act_cfg=None) for i in range(4)}
    for i in range(4):
        cfg.distiller.loss_forward_mappings[f'loss_pkd_fpn{i}'].preds_S.connector = f'align{i}'
    MODELS.build(cfg)


def test_different_class_counts_for_a_logit_loss_are_refused(toy_models):
    cfg = copy.deepcopy(toy_models['ld'])
    cfg.teacher.bbox_head.num_classes = 80
    with pytest.raises(ValueError, match=(
            r'different numbers of classes \(student bbox_head.num_classes=4, teacher '
            r"bbox_head.num_classes=80\).*\['loss_ld'\].*Fix: give both heads the same")):
        MODELS.build(cfg)
    # a feature loss between different class counts is fine
    cfg = copy.deepcopy(toy_models['pkd'])
    cfg.teacher.bbox_head.num_classes = 80
    MODELS.build(cfg)


def test_startup_checks_leave_a_seeded_run_unchanged(tmp_path):
    """The build-time dry run calls MGD's connector, which draws its mask from torch's RNG; the
    checks restore every RNG, so a seeded run logs the same losses with the checks on and off."""
    from mmengine.runner import Runner

    import _hardening_hooks  # noqa: F401  (registers LossRecorderHook in this process)
    cfg = hardening_cfg(MGD_TOY, tmp_path, num_train=4, epochs=1, hooks=('LossRecorderHook', ))
    losses = {}
    for checks in (True, False):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.model.startup_checks = checks
        run_cfg.work_dir = str(tmp_path / f'checks_{checks}')
        Runner.from_cfg(run_cfg).train()
        losses[checks] = read_losses(run_cfg.work_dir)
    assert len(losses[True]) == 2 and 'distill.loss_mgd_fpn0' in losses[True][1]
    assert losses[True] == losses[False]


def _coco(root, boxes):
    images = [dict(id=i + 1, file_name=f'img{i + 1}.png', width=100, height=100)
              for i in range(len(boxes))]
    anns = [dict(id=i + 1, image_id=i + 1, category_id=1, bbox=b, area=100.0, iscrowd=0)
            for i, b in enumerate(boxes)]
    path = osp.join(root, 'ann.json')
    with open(path, 'w') as f:  # json writes NaN as the NaN literal, which json.load reads
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=1, name='circle')]), f)
    return path


@pytest.mark.parametrize('bad, problem', [([50, 10, -20, 30], r'x2 < x1 \(x1=50.0, x2=30.0\)'),
                                          ([10, float('nan'), 20, 30], 'NaN')])
def test_bad_gt_boxes_fail_or_are_skipped_naming_the_image(tmp_path, bad, problem):
    from mmkd.datasets import CheckedCocoDataset, ToyShapesDataset
    from mmkd.datasets.checked_coco import CheckedBoxesMixin
    ann = _coco(str(tmp_path), [[10, 10, 20, 30], bad, [5, 5, 40, 40]])
    kwargs = dict(ann_file=ann, data_prefix=dict(img=str(tmp_path)), pipeline=[],
                  metainfo=dict(classes=('circle', )))
    with pytest.raises(ValueError, match=(rf"image 'img2.png' \(id 2\), annotation id 2.*"
                                          rf"{problem}.*Fix.*bad_boxes='skip'")):
        CheckedCocoDataset(**kwargs)
    with pytest.warns(UserWarning, match=rf"skipped 1 image.*'img2.png'.*{problem}"):
        data = CheckedCocoDataset(bad_boxes='skip', **kwargs)
    assert [osp.basename(data.get_data_info(i)['img_path']) for i in range(len(data))] == \
        ['img1.png', 'img3.png']
    assert issubclass(ToyShapesDataset, CheckedBoxesMixin)  # the toy set is checked too
