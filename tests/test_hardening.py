"""Hardening: faults survived, bad input refused at start-up with the fix named.

Training runs are tiny toy runs (a few 128x128 images, 2-4 iterations) through the CLI, as in
tests/test_toy_end_to_end.py, or in process through mmengine's Runner.
"""
import copy
import glob
import io
import json
import os
import os.path as osp
import re
import signal
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
from _toy import PKD_TOY, REPO, free_port, run_failure_output, tiny_batch, tiny_toy_cfg

PY = sys.executable
DKD_TOY = osp.join(REPO, 'configs/toy/dkd_faster-rcnn_r18-fpn-20e_faster-rcnn_r18-fpn_toy.py')
LD_TOY = osp.join(REPO, 'configs/toy/ld_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
MGD_TOY = osp.join(REPO, 'configs/toy/mgd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
METHODS = dict(pkd=PKD_TOY, ld=LD_TOY)  # one feature, one response method
pytestmark = pytest.mark.timeout(300)


def run(*args, env=None, check=True):
    # this repository's mmkd (not another installed copy) and the test hooks
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, osp.join(REPO, 'tests')]),
               OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run([*args], cwd=REPO, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, f'{args} failed:\n{out[-4000:]}'
    return proc.returncode, out


def hardening_cfg(config: str, root, num_train: int, epochs: int, batch_size: int = 2,
                  hooks=(), validate: bool = False) -> Config:
    """A tiny, reproducible toy config (the toy pipeline, RandomFlip included) with a saved
    random teacher; validated after every epoch when ``validate``, else never."""
    init_default_scope('mmdet')
    cfg = tiny_toy_cfg(config, str(root / 'data'), num_train=num_train, num_val=2, epochs=epochs,
                       batch_size=batch_size)
    cfg.randomness = dict(seed=0, deterministic=True)
    if validate:
        cfg.train_cfg.val_interval = 1
    else:
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
#: method: (config, num_workers, validate after every epoch, extra options of the resumed run)
RESUME_CASES = {
    # one-stage; the flips drawn in the main process; validation between epochs
    'pkd': (PKD_TOY, 0, True, ()),
    # two-stage (RPN/RoI samplers draw from torch); flips drawn in 2 data workers; the resumed
    # run's config sets no seed, so it builds its dataloader with another one
    'dkd': (DKD_TOY, 2, False, ('--cfg-options', 'randomness.seed=None')),
}


@pytest.mark.timeout(900)  # three training runs of 3 epochs
@pytest.mark.parametrize('method', sorted(RESUME_CASES))
def test_sigkill_then_resume_logs_the_uninterrupted_losses(method, tmp_path):
    """With the training pipeline as users run it (RandomFlip on), a run killed after
    epoch_2.pth and resumed with --resume logs exactly the uninterrupted run's losses: the same
    float32 values, not merely close (same machine, same operations on the same numbers)."""
    config, workers, validate, resume_options = RESUME_CASES[method]
    # 4 images, batch 2: 2 iterations per epoch, 3 epochs, a checkpoint after each epoch
    cfg = hardening_cfg(config, tmp_path, num_train=4, epochs=3, validate=validate,
                        hooks=('LossRecorderHook', 'KillAtIterHook'))
    assert [s.prob for s in cfg.train_dataloader.dataset.pipeline if s.type == 'RandomFlip'] == \
        [0.5]
    cfg.train_dataloader.update(num_workers=workers, persistent_workers=False)
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=1)
    cfg.dump(str(tmp_path / 'cfg.py'))
    train = (PY, 'tools/train.py', str(tmp_path / 'cfg.py'), '--work-dir')

    _, out = run(*train, str(tmp_path / 'straight'))
    assert ('Epoch(val) [3][1/1]' in out) == validate, out[-3000:]
    reference = read_losses(tmp_path / 'straight')
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]

    # killed after iteration 5: epoch_2.pth (iteration 4) is the last checkpoint
    work = tmp_path / 'killed'
    rc, out = run(*train, str(work), env=dict(MMKD_KILL_AT_ITER='5'), check=False)
    assert rc == -9, out[-3000:]
    assert sorted(read_losses(work)) == [1, 2, 3, 4, 5]
    assert open(work / 'last_checkpoint').read().strip().endswith('epoch_2.pth')
    # the generator states are in the checkpoint and load under weights_only
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=True)
    state = ckpt['rng_state']['ranks'][0]
    assert state['numpy'][0] == 'MT19937' and len(state['numpy'][1]) == 624
    os.remove(work / 'losses.jsonl')

    _, out = run(*train, str(work), '--resume', *resume_options)
    assert 'resumed epoch: 2, iter: 4' in out and 'random generator states restored' in out, \
        out[-3000:]
    if resume_options:
        assert 'now use(s) the checkpoint\'s seed 0' in out, out[-3000:]
    resumed = read_losses(work)
    assert sorted(resumed) == [5, 6]
    assert any(k.startswith('distill.') for k in reference[5]), reference[5]
    for it in (5, 6):
        assert resumed[it] == reference[it], (it, resumed[it], reference[it])


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


def test_last_checkpoint_is_written_through_the_atomic_open():
    from mmengine.hooks import checkpoint_hook
    assert checkpoint_hook.open is atomic_checkpoint.open_text_atomically
    with open(checkpoint_hook.__file__) as f:  # the one place mmengine writes it
        assert f.read().count('open(') == 1


def test_a_failed_last_checkpoint_write_keeps_the_old_one(tmp_path, monkeypatch):
    from mmengine.hooks import checkpoint_hook
    path = tmp_path / 'last_checkpoint'
    path.write_text('/work/epoch_1.pth')
    real_fdopen = os.fdopen

    class HalfWrittenFile:
        """A file whose write stops half way (a full disk, a kill)."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise OSError(28, 'No space left on device (simulated)')

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, 'fdopen', lambda *a, **k: HalfWrittenFile(real_fdopen(*a, **k)))
    with pytest.raises(OSError, match='No space left'):
        with checkpoint_hook.open(str(path), 'w') as f:  # as CheckpointHook writes it
            f.write('/work/epoch_2.pth')
    assert path.read_text() == '/work/epoch_1.pth'
    assert os.listdir(tmp_path) == ['last_checkpoint'], 'the temporary file was left behind'
    monkeypatch.undo()
    with checkpoint_hook.open(str(path), 'w') as f:
        f.write('/work/epoch_2.pth')
    assert path.read_text() == '/work/epoch_2.pth'


KILLED_WHILE_WRITING = """
import os, signal, sys
import mmkd
from mmengine.hooks import checkpoint_hook
# SIGKILL once the new text is in the temporary file, before it replaces the old file
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
with checkpoint_hook.open(sys.argv[1], 'w') as f:
    f.write(sys.argv[2])
"""


def test_a_kill_while_writing_last_checkpoint_keeps_the_old_one(tmp_path):
    path = tmp_path / 'last_checkpoint'
    path.write_text('/work/epoch_1.pth')
    rc, out = run(PY, '-c', KILLED_WHILE_WRITING, str(path), '/work/epoch_2.pth', check=False)
    assert rc == -signal.SIGKILL, out[-3000:]
    assert path.read_text() == '/work/epoch_1.pth'
    left = [p for p in os.listdir(tmp_path) if p != 'last_checkpoint']
    assert len(left) == 1 and left[0].startswith('.last_checkpoint.')  # the killed write's
    from mmengine.hooks import checkpoint_hook
    with checkpoint_hook.open(str(path), 'w') as f:  # the next write cleans it up
        f.write('/work/epoch_2.pth')
    assert os.listdir(tmp_path) == ['last_checkpoint']
    assert path.read_text() == '/work/epoch_2.pth'


def _fake_runner(resume: bool):
    from types import SimpleNamespace

    from mmengine.runner import EpochBasedTrainLoop
    loader = SimpleNamespace(num_workers=0, persistent_workers=False, sampler=None,
                             batch_sampler=None, worker_init_fn=None)
    return SimpleNamespace(_resume=resume, train_dataloader=loader,
                           train_loop=EpochBasedTrainLoop.__new__(EpochBasedTrainLoop))


def test_rng_states_are_restored_on_resume_only():
    """--resume restores the checkpoint's generator states at the next epoch; load_from
    (fine-tuning) and a checkpoint of another number of processes leave them alone."""
    import random

    import numpy as np

    from mmkd.engine import ExactResumeHook
    from mmkd.engine.rng_state import capture_rng_state
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = capture_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint = dict(meta=dict(seed=None), rng_state=dict(ranks=[saved]))

    def draws_after(runner, ckpt):
        hook = ExactResumeHook()
        hook.after_load_checkpoint(runner, ckpt)
        random.seed(2), np.random.seed(2), torch.manual_seed(2)  # what the run does meanwhile
        hook.before_train_epoch(runner)
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert draws_after(_fake_runner(resume=True), checkpoint) == draws
    assert draws_after(_fake_runner(resume=False), checkpoint) != draws
    two_ranks = dict(checkpoint, rng_state=dict(ranks=[saved, saved]))
    assert draws_after(_fake_runner(resume=True), two_ranks) != draws


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
    saved = osp.join(cfg.work_dir, 'last_finite.pth')
    with pytest.raises(NonFiniteLossError,
                       match=r'Iteration 2: non-finite loss \(distill\.loss_pkd_fpn2 = nan\)'
                       r'.*weights are those of the last good step, saved in '
                       + re.escape(saved) + r'.*action=.skip.'):
        runner.train()
    for name, p in runner.model.named_parameters():  # step 2 changed nothing
        assert torch.equal(p, snapshots[2][name]), name
        assert torch.isfinite(p).all()
    # ... and those weights were saved, with the optimizer, after the one completed step
    ckpt = torch.load(saved, map_location='cpu', weights_only=True)
    assert (ckpt['meta']['epoch'], ckpt['meta']['iter']) == (0, 1) and 'optimizer' in ckpt
    for name, p in runner.model.named_parameters():
        assert torch.equal(ckpt['state_dict'][name], snapshots[2][name]), name


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
@pytest.mark.parametrize('method', sorted(METHODS))
def test_two_process_ddp_ranks_end_with_the_same_weights(method, tmp_path):
    # 8 images, 2 per rank and step: 2 steps
    cfg = hardening_cfg(METHODS[method], tmp_path, num_train=8, epochs=1,
                        hooks=('SaveRankStateHook', ))
    cfg.default_hooks.checkpoint.interval = 1  # one, at the end: it holds both ranks' RNG states
    cfg.dump(str(tmp_path / 'cfg.py'))
    code, out = run('bash', 'tools/dist_train.sh', str(tmp_path / 'cfg.py'), '2', '--work-dir',
                    str(tmp_path / 'work'), env=dict(PYTHON=PY, PORT=str(free_port())),
                    check=False)
    assert code == 0, run_failure_output(out)
    assert 'Epoch(train) [1][2/2]' in out, out[-3000:]
    # neither torch's warning (True but none unused) nor its error (False but some unused)
    assert 'find_unused_parameters=True' not in out and 'unused parameter' not in out, out[-3000:]
    states = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu',
                        weights_only=True)['rng_state']['ranks']
    assert len(states) == 2  # gathered from both ranks, for an exact resume of each
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
    cfg.teacher.bbox_head = dict(num_classes=80)  # merged into the teacher's config
    with pytest.raises(ValueError, match=(
            r'different numbers of classes \(student bbox_head.num_classes=4, teacher '
            r"bbox_head.num_classes=80\).*\['loss_ld'\].*Fix: give both heads the same")):
        MODELS.build(cfg)
    # a feature loss between different class counts is fine
    cfg = copy.deepcopy(toy_models['pkd'])
    cfg.teacher.bbox_head = dict(num_classes=80)  # merged into the teacher's config
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
