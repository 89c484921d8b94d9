"""tools/toy_main_job.py: paired statistics over seeds, fair baselines, per-seed caching.

No real training here: the tool's subprocess runner is replaced by a fake that writes what
tools/train.py and tools/test.py would (a checkpoint, a COCO metric line).
"""
import importlib.util
import json
import math
import os.path as osp
import re
import threading
import time

import pytest
from mmengine.config import Config

import mmkd  # noqa: F401
from mmkd.utils.paired_stats import ONE_SEED, mean_sd, paired_difference, t_critical
from mmkd.visualization import plot_results, results_chart_px
from _toy import REPO

pytestmark = pytest.mark.timeout(600)


def load_job():
    spec = importlib.util.spec_from_file_location(
        'toy_main_job', osp.join(REPO, 'tools', 'toy_main_job.py'))
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


# --- statistics ---------------------------------------------------------------------------

def test_t_critical_matches_published_quantiles():
    # two-sided 95% points of Student's t (any statistics table), 3 decimals
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228,
             20: 2.086, 29: 2.045, 30: 2.042, 60: 2.000, 120: 1.980}
    for df, expected in table.items():
        assert t_critical(df) == pytest.approx(expected, abs=5e-4), df
    # closed forms: df 1 is Cauchy, t = tan(pi/2 * 0.95); df 2: t = c * sqrt(2 / (1 - c^2))
    assert t_critical(1) == pytest.approx(math.tan(math.pi / 2 * 0.95), rel=1e-9)
    assert t_critical(2) == pytest.approx(0.95 * math.sqrt(2 / (1 - 0.95**2)), rel=1e-9)
    assert t_critical(2, confidence=0.5) == pytest.approx(0.5 * math.sqrt(2 / 0.75), rel=1e-9)
    assert t_critical(5, confidence=0.99) == pytest.approx(4.032, abs=5e-4)
    assert t_critical(2000) == pytest.approx(1.961, abs=1e-3)  # -> the normal's 1.960
    with pytest.raises(ValueError, match='df'):
        t_critical(0)


def test_mean_and_sample_sd():
    assert mean_sd([20.0, 22.0, 21.0]) == (21.0, 1.0)  # squares 1 + 1 + 0 over n - 1 = 2
    assert mean_sd([7.5]) == (7.5, None)


def test_paired_difference_of_three_seeds_by_hand():
    # seed:        0     1     2
    # baseline:  20.0  22.0  21.0
    # distilled: 23.0  24.0  25.0   differences 3, 2, 4
    # mean 3; sd sqrt(((3-3)^2 + (2-3)^2 + (4-3)^2) / 2) = 1; t_{0.975, 2} = 4.303
    # half width 4.303 * 1 / sqrt(3) = 2.484: interval [0.516, 5.484], above 0: better
    base = {'0': 20.0, '1': 22.0, '2': 21.0}
    d = paired_difference({'0': 23.0, '1': 24.0, '2': 25.0}, base)
    assert (d.n, d.mean, d.sd, d.verdict) == (3, 3.0, 1.0, 'better')
    assert d.low == pytest.approx(0.516, abs=1e-3) and d.high == pytest.approx(5.484, abs=1e-3)
    # differences 1, -1, 3: mean 1, sd sqrt((0 + 4 + 4) / 2) = 2, half 4.303 * 2 / sqrt(3)
    # = 4.969: [-3.969, 5.969] holds 0
    d = paired_difference({'0': 21.0, '1': 21.0, '2': 24.0}, base)
    assert (d.mean, d.sd, d.verdict) == (1.0, 2.0, 'no difference')
    assert d.low == pytest.approx(-3.969, abs=1e-3) and d.high == pytest.approx(5.969, abs=1e-3)
    # the first case the other way round: [-5.484, -0.516], below 0
    d = paired_difference(base, {'0': 23.0, '1': 24.0, '2': 25.0})
    assert d.verdict == 'worse' and d.high == pytest.approx(-0.516, abs=1e-3)


def test_paired_difference_pairs_by_seed_and_says_so_with_one_seed():
    # paired by seed, not by position; seed 1 has no baseline: two pairs, 26-21=5 and 23-20=3
    d = paired_difference({'2': 26.0, '0': 23.0, '1': 99.0}, {'0': 20.0, '2': 21.0})
    assert (d.n, d.mean, d.sd) == (2, 4.0, math.sqrt(2))
    # half width 12.706 * sqrt(2) / sqrt(2) = 12.706
    assert d.low == pytest.approx(4 - 12.706, abs=1e-3) and d.verdict == 'no difference'
    d = paired_difference({'0': 30.0}, {'0': 20.0})
    assert (d.n, d.mean, d.sd, d.low, d.high, d.verdict) == (1, 10.0, None, None, None, ONE_SEED)
    assert d.verdict == '1 seed: no interval'
    with pytest.raises(ValueError, match='no seed in common'):
        paired_difference({'0': 1.0}, {'1': 1.0})


# --- fair baselines -----------------------------------------------------------------------

SETTINGS = '''
train_dataloader = dict(batch_size=8, dataset=dict(type='ToyShapes', num=320))
test_dataloader = dict(batch_size=8, dataset=dict(type='ToyShapes', num=100))
test_evaluator = dict(type='CocoMetric')
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=8)
param_scheduler = [dict(type='LinearLR', end=100), dict(type='CosineAnnealingLR', end=8)]
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.02), clip_grad={clip})
'''


def write_configs(root):
    """A student model file, a distilled config (clip 35) and baselines around it."""
    (root / 'student.py').write_text(
        "model = dict(type='GFL', backbone=dict(type='ResNet', depth=18), bbox_head=dict("
        "type='GFLHead', num_classes=80))\n")
    distill_model = (
        "model = dict(_scope_='mmkd', type='DetectionDistill', distiller=dict(type='D'), "
        f"architecture=dict(cfg_path='{root / 'student.py'}', bbox_head=dict(num_classes=4)))\n")
    student = ("model = dict(type='GFL', backbone=dict(type='ResNet', depth=18), bbox_head="
               "dict(type='GFLHead', num_classes=4))\n")
    clip35 = "dict(max_norm=35, norm_type=2)"
    texts = dict(
        distilled=distill_model + SETTINGS.format(clip=clip35),
        base_clip35=student + SETTINGS.format(clip=clip35),
        base_noclip=student + SETTINGS.format(clip=None),
        teacher=student.replace('depth=18', 'depth=50') + SETTINGS.format(clip=clip35),
        base_5classes=student.replace('num_classes=4', 'num_classes=5')
        + SETTINGS.format(clip=clip35))
    paths = {}
    for name, text in texts.items():
        paths[name] = str(root / f'{name}.py')
        (root / f'{name}.py').write_text("default_scope = 'mmdet'\n" + text)
    return {name: (path, Config.fromfile(path)) for name, path in paths.items()}


def test_the_fair_baseline_has_the_same_student_data_schedule_and_optimizer(tmp_path):
    job = load_job()
    cfgs = write_configs(tmp_path)
    path, distilled = cfgs['distilled']
    candidates = {p: c for name, (p, c) in cfgs.items() if name != 'distilled'}
    assert job.find_baseline(path, distilled, candidates) == cfgs['base_clip35'][0]
    assert job.baseline_differences(distilled, cfgs['base_noclip'][1]) == [
        'optim_wrapper.clip_grad']
    assert job.baseline_differences(distilled, cfgs['teacher'][1]) == ['model.backbone.depth']
    assert job.baseline_differences(distilled, cfgs['base_5classes'][1]) == [
        'model.bbox_head.num_classes']

    # the one with the same clip_grad gone: refused, naming what differs in the others
    del candidates[cfgs['base_clip35'][0]]
    with pytest.raises(job.BaselineError) as err:
        job.find_baseline(path, distilled, candidates)
    assert 'no fair baseline' in str(err.value)
    assert re.search(r'base_noclip\.py: differs in optim_wrapper\.clip_grad\n', str(err.value))

    # two equal baselines: refused, naming both
    candidates = {p: c for name, (p, c) in cfgs.items() if name.startswith('base_clip35')}
    twin = str(tmp_path / 'twin.py')
    cfgs['base_clip35'][1].dump(twin)
    candidates[twin] = Config.fromfile(twin)
    with pytest.raises(job.BaselineError, match='several toy configs.*base_clip35.py.*twin.py'):
        job.find_baseline(path, distilled, candidates)


@pytest.fixture(scope='module')
def toy_configs():
    job = load_job()
    return job, {p: Config.fromfile(p) for p in sorted(
        job.glob.glob(osp.join(job.TOY_DIR, '*.py')))}


def test_every_toy_distillation_config_has_one_fair_baseline(toy_configs):
    job, configs = toy_configs
    candidates = {p: c for p, c in configs.items() if not job.is_distillation(c)}
    distilled = [p for p, c in configs.items() if job.is_distillation(c)]
    assert len(distilled) >= 10
    for path in distilled:
        baseline = job.find_baseline(path, configs[path], candidates)
        assert job.student_of(configs[path])['type'] == candidates[baseline].model.type
        # with another gradient clipping it no longer has one, and the message says why
        cfg = Config.fromfile(path)
        cfg.optim_wrapper.clip_grad = dict(max_norm=1, norm_type=2)
        with pytest.raises(job.BaselineError, match=r'differs in optim_wrapper\.clip_grad\.'
                           r'max_norm'):
            job.find_baseline(path, cfg, candidates)


def test_families_and_all_select_the_toy_distillation_configs(toy_configs):
    job, configs = toy_configs
    every = job.select_configs(['all'], None, configs)
    gfl = job.select_configs(None, 'gfl', configs)
    frcnn = job.select_configs(None, 'frcnn', configs)
    assert job.select_configs(None, 'all', configs) == every
    assert gfl and frcnn and sorted(gfl + frcnn) == sorted(every)
    # LD distils GFL's box distributions, DKD Faster R-CNN's RoI logits
    assert {'ld', 'ld-full', 'pkd'} <= {m for m, _ in gfl}
    assert {'dkd', 'defeat', 'reviewkd'} <= {m for m, _ in frcnn}
    assert job.select_configs(None, None, configs) == job.select_configs(['pkd'], None, configs)
    assert job.select_configs(['ld', 'dkd'], 'gfl', configs) == [
        ('ld', p) for m, p in gfl if m == 'ld']
    with pytest.raises(SystemExit, match='stands alone'):
        job.select_configs(['all', 'pkd'], None, configs)
    with pytest.raises(SystemExit, match="no toy distillation config for method 'gfl'"):
        job.select_configs(['gfl'], None, configs)  # a baseline, not a method


# --- per-seed caching and the whole job, with a fake runner -------------------------------

def test_keep_trained_keeps_only_the_same_seed_and_config(tmp_path, monkeypatch):
    job = load_job()
    commands = []

    def fake_run(cmd, log_file):
        commands.append(cmd)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        (tmp_path / 'epoch_1.pth').write_text('weights')
        (tmp_path / 'last_checkpoint').write_text(osp.join(work_dir, 'epoch_1.pth'))
        return 12.5

    monkeypatch.setattr(job, 'run', fake_run)
    config, work = 'configs/toy/x.py', str(tmp_path)
    stamp = job.train(config, work, seed=7, digest='a')
    assert stamp == dict(seed=7, config_digest='a', train_seconds=12.5, checkpoint='epoch_1.pth',
                         kept=False)
    assert commands[-1][-2:] == ['--cfg-options', 'randomness.seed=7']
    # kept: same seed, same config; trained again: without --keep-trained, another seed,
    # another config, or the checkpoint gone; unseeded: no seed option
    assert job.train(config, work, seed=7, digest='a', keep_trained=True)['kept']
    assert len(commands) == 1
    assert not job.train(config, work, seed=7, digest='a')['kept']
    assert not job.train(config, work, seed=8, digest='a', keep_trained=True)['kept']
    assert not job.train(config, work, seed=8, digest='b', keep_trained=True)['kept']
    assert len(commands) == 4
    (tmp_path / 'epoch_1.pth').unlink()
    assert not job.train(config, work, seed=8, digest='b', keep_trained=True)['kept']
    assert job.train(config, work, seed=None, digest='b')['seed'] is None
    assert '--cfg-options' not in commands[-1] and len(commands) == 6
    assert job.train(config, work, seed=None, digest='b', keep_trained=True)['kept']
    assert not job.train(config, work, seed=0, digest='b', keep_trained=True)['kept']


def test_the_digest_follows_what_a_config_trains_not_the_toy_building_blocks(tmp_path):
    """A change to one family's toy_* blocks in toy_shapes.py (assigned to the other family's
    models only) leaves a config's digest, and so its cached models, alone; a change to what
    the config trains does not."""
    job = load_job()
    base = tmp_path / 'toy_base.py'
    config = tmp_path / 'model.py'

    def digest(base_text, config_text, *extra):
        base.write_text(base_text)
        config.write_text("_base_ = ['./toy_base.py']\n" + config_text)
        return job.config_digest(str(config), *extra)

    first = digest('toy_a = dict(depth=18)\ntoy_b = dict(depth=50)\n', 'model = _base_.toy_a\n')
    # the other block changed, or a new one: the same digest
    assert digest('toy_a = dict(depth=18)\ntoy_b = dict(depth=101)\n',
                  'model = _base_.toy_a\n') == first
    assert digest('toy_a = dict(depth=18)\ntoy_b = dict(depth=50)\ntoy_c = 1\n',
                  'model = _base_.toy_a\n') == first
    # the block the model is made of, the config itself, or the teacher's digest: another one
    assert digest('toy_a = dict(depth=34)\ntoy_b = dict(depth=50)\n',
                  'model = _base_.toy_a\n') != first
    assert digest('toy_a = dict(depth=18)\ntoy_b = dict(depth=50)\n',
                  'model = _base_.toy_a\nlr = 0.1\n') != first
    assert digest('toy_a = dict(depth=18)\ntoy_b = dict(depth=50)\n',
                  'model = _base_.toy_a\n', 'teacher') != first


#: COCO AP (fraction) that the fake tools/test.py reports, by role and seed
FAKE_AP = {'teacher': {'0': 0.40},
           'baseline': {'0': 0.20, '1': 0.22, '2': 0.21},
           'pkd': {'0': 0.23, '1': 0.24, '2': 0.25},
           'cwd': {'0': 0.21, '1': 0.21, '2': 0.24}}


class FakeTools:
    """Stands in for ``run``: 'trains' by writing a checkpoint that names its role and seed,
    'tests' by printing the COCO metrics of :data:`FAKE_AP` for them."""

    def __init__(self, roles):
        self.roles = roles  # config path -> role
        self.trained, self.tested = [], []

    def __call__(self, cmd, log_file):
        tool, config = cmd[1], cmd[2]
        if tool == 'tools/train.py':
            work_dir = cmd[cmd.index('--work-dir') + 1]
            seed = cmd[-1].split('=')[1] if '--cfg-options' in cmd else 'none'
            self.trained.append((self.roles[config], seed))
            with open(osp.join(work_dir, 'epoch_8.pth'), 'w') as f:
                json.dump(dict(role=self.roles[config], seed=seed), f)
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work_dir, 'epoch_8.pth'))
            return 60.0 * (1 + len(self.trained))
        assert tool == 'tools/test.py'
        with open(cmd[3]) as f:
            ckpt = json.load(f)
        self.tested.append((ckpt['role'], ckpt['seed']))
        ap = FAKE_AP[ckpt['role']][ckpt['seed']]
        with open(log_file, 'w') as f:
            f.write(f'coco/bbox_mAP: {ap:.3f}  coco/bbox_mAP_50: {ap + 0.2:.3f}  '
                    f'coco/bbox_mAP_75: {ap - 0.05:.3f}\n')
        return 1.0


def test_main_job_over_three_seeds_with_one_teacher_and_resume(tmp_path, monkeypatch, capsys):
    job = load_job()
    plan, teachers = job.plan_job(job.parse_args(['--methods', 'pkd', 'cwd', '--family', 'gfl']))
    pkd, cwd = plan
    assert (pkd['method'], cwd['method']) == ('pkd', 'cwd')
    assert pkd['baseline'] == cwd['baseline'] and pkd['teacher'] == cwd['teacher']
    (teacher, ) = teachers
    base, tpath = job.config_stem(pkd['baseline']), teachers[teacher]['config']
    fake = FakeTools({tpath: 'teacher', pkd['baseline']: 'baseline', pkd['config']: 'pkd',
                      cwd['config']: 'cwd'})
    monkeypatch.setattr(job, 'run', fake)
    monkeypatch.setattr(job, 'REPO', str(tmp_path))  # the teacher cache goes under tmp_path
    monkeypatch.setattr(job, 'BENCHMARK_JSON', str(tmp_path / 'benchmarks/toy/results.json'))
    args = ['--methods', 'pkd', '--family', 'gfl', '--seeds', '0', '1', '2', '--work-dir',
            'bench', '--keep-trained']
    job.main(args)
    # the teacher once, with the teacher seed; baseline and PKD once per seed
    assert fake.trained == [('teacher', str(job.TEACHER_SEED))] + [
        (role, s) for s in '012' for role in ('baseline', 'pkd')]
    assert (tmp_path / teachers[teacher]['ckpt']).is_file()
    pkd_name = job.config_stem(pkd['config'])
    assert (tmp_path / 'bench/seed1' / pkd_name / 'trained.json').is_file()
    results = json.loads((tmp_path / 'bench/results.json').read_text())
    assert results['seeds'] == ['0', '1', '2'] and results['teacher_seed'] == 0
    runs = results['models'][pkd_name]['runs']
    assert results['models'][pkd_name]['baseline'] == base
    assert results['models'][pkd_name]['teacher'] == teacher
    assert {s: round(r['AP'], 6) for s, r in runs.items()} == {'0': 23.0, '1': 24.0, '2': 25.0}
    assert runs['2']['AP75'] == pytest.approx(20.0)
    assert results['teachers'][teacher]['AP'] == pytest.approx(40.0)
    text = (tmp_path / 'bench/results.md').read_text()
    # baseline 20, 22, 21 against PKD 23, 24, 25: the hand-computed case above
    epochs = pkd['epochs']
    assert re.search(rf'\| pkd \| {teacher} \| 40\.0 \| {base} \| 3 \| 24\.0 \| 1\.0 \| '
                     rf'44\.0 \| 1\.0 \| 19\.0 \| 1\.0 \| 3\.0 \| 0\.5 \| 5\.5 \| better '
                     rf'\| {epochs} \|', text), text
    assert re.search(rf'\| baseline \| — \| — \| {base} \| 3 \| 21\.0 \| 1\.0 \|.* \| — '
                     rf'\| {epochs} \|', text), text
    # teacher 40 against baseline mean 21 and best seed 22
    assert re.search(rf'\| {teacher} \| gfl \| 0 \| 40\.0 \|.*\| {base} \| 19\.0 \| 18\.0 '
                     rf'\| {teachers[teacher]["epochs"]} \|', text), text
    assert 'Seeds: 0, 1, 2 (3 seeds' in text and '`python tools/toy_main_job.py --methods' in text
    assert 'Wall time of the whole job' in text
    # results.json alone rebuilds the table
    assert job.markdown(results) == text
    assert (tmp_path / 'bench/results.png').is_file()
    assert 'Ran seeds 0, 1, 2 (3 seeds)' in capsys.readouterr().out

    # resumed: nothing trained or tested again; a method added: only it, once per seed
    trained, tested = len(fake.trained), len(fake.tested)
    job.main(args[:2] + ['cwd'] + args[2:])
    assert fake.trained[trained:] == [('cwd', s) for s in '012']
    assert fake.tested[tested:] == [('cwd', s) for s in '012']
    text = (tmp_path / 'bench/results.md').read_text()
    assert re.search(r'\| cwd \|.*\| 1\.0 \| -4\.0 \| 6\.0 \| no difference \|', text), text
    results = json.loads((tmp_path / 'bench/results.json').read_text())
    assert [r['kept'] for r in runs.values()] == [False] * 3
    assert [r['kept'] for r in results['models'][pkd_name]['runs'].values()] == [True] * 3

    # one seed: no verdict, and the note points to the published benchmark's spread
    (tmp_path / 'benchmarks/toy').mkdir(parents=True)
    (tmp_path / 'benchmarks/toy/results.json').write_text(json.dumps(results))
    job.main(['--methods', 'pkd', '--family', 'gfl', '--seed', '0', '--work-dir', 'one'])
    assert '| 1 seed: no interval |' in (tmp_path / 'one/results.md').read_text()
    out = capsys.readouterr().out
    assert 'Ran one seed (0)' in out and f'{base} AP sd 1.0 over 3 seeds' in out


def test_jobs_train_students_side_by_side_with_the_cores_shared(tmp_path, monkeypatch):
    """--jobs 2 on 2 cores: the teacher alone with torch's default threads, then the students
    two at a time with one thread each; the same runs and the same table as one at a time."""
    job = load_job()
    (pkd, ), teachers = job.plan_job(job.parse_args(['--methods', 'pkd', '--family', 'gfl']))
    fake = FakeTools({teachers[pkd['teacher']]['config']: 'teacher', pkd['baseline']: 'baseline',
                      pkd['config']: 'pkd'})
    threads, running, most = {}, [0], [0]
    lock = threading.Lock()

    def tools(cmd, log_file):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the other worker to start its run
        try:
            out = fake(cmd, log_file)
            threads.setdefault(fake.trained[-1][0] if cmd[1] == 'tools/train.py' else 'test',
                               set()).add(job.TOOL_THREADS)
            return out
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(job, 'run', tools)
    monkeypatch.setattr(job, 'REPO', str(tmp_path))
    monkeypatch.setattr(job, 'BENCHMARK_JSON', str(tmp_path / 'benchmarks/toy/results.json'))
    monkeypatch.setattr(job.os, 'cpu_count', lambda: 2)
    job.main(['--methods', 'pkd', '--family', 'gfl', '--seeds', '0', '1', '2', '--work-dir',
              'bench', '--jobs', '2'])
    assert fake.trained[0] == ('teacher', '0')
    assert sorted(fake.trained[1:]) == sorted((r, s) for s in '012' for r in ('baseline', 'pkd'))
    assert threads == {'teacher': {None}, 'baseline': {1}, 'pkd': {1}, 'test': {None, 1}}
    assert most[0] == 2 and job.TOOL_THREADS is None
    text = (tmp_path / 'bench/results.md').read_text()
    assert re.search(r'\| pkd \|.*\| 3 \| 24\.0 \| 1\.0 \|.*\| 3\.0 \| 0\.5 \| 5\.5 \| better '
                     r'\|', text), text
    with pytest.raises(SystemExit):
        job.parse_args(['--jobs', '0'])


def test_results_chart_draws_error_bars(tmp_path):
    rows = {'teacher': dict(role='teacher', AP=40.0, AP50=60.0, AP75=41.0),
            'base': dict(role='baseline', AP=21.0, AP50=41.0, AP75=16.0),
            'pkd': dict(role='pkd', AP=24.0, AP50=44.0, AP75=19.0)}
    plain = plot_results(rows, str(tmp_path / 'plain.png'))
    for metric in ('AP', 'AP50', 'AP75'):
        rows['pkd'][metric + '_sd'] = 5.0
    bars = plot_results(rows, str(tmp_path / 'bars.png'))
    from matplotlib.image import imread
    a, b = imread(plain), imread(bars)
    assert a.shape[:2] == b.shape[:2] == results_chart_px()[::-1]
    # the error bars are black vertical strokes above and below the top of PKD's bars only
    changed = (abs(a - b).max(axis=-1) > 0.1).any(axis=0).nonzero()[0]
    assert len(changed) and changed.min() > a.shape[1] * 0.66, changed
