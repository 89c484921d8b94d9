"""The main job on the built-in data set: teachers, baselines and distilled students over seeds.

    python tools/toy_main_job.py [--methods pkd ... | --methods all] [--family gfl|frcnn|all]
                                 [--seeds 0 1 2] [--keep-trained] [--work-dir work_dirs/toy]
                                 [--jobs 2]

Each method ``m`` is the distillation config ``configs/toy/m_*_toy.py`` (``--methods all`` or
``--family``: every toy distillation config, of one detector family or of all). Everything
goes through the user's tools: ``tools/train.py`` trains, ``tools/test.py`` evaluates.

- **Teacher**: trained once per family with seed :data:`TEACHER_SEED`, whatever ``--seeds``
  says, and cached where the distillation config's ``teacher_ckpt`` points
  (``work_dirs/toy/teacher_<config>.pth`` for ``configs/toy/<config>.py``, beside a ``.json``
  stamp); retrained only when its config changes. Every student seed distils the same file.
- **Baseline**: the non-distillation toy config whose model is the distilled config's student and
  whose training data, schedule, optimizer (gradient clipping included) and test set are the
  distilled config's. None or several such configs: the job stops before training, naming the
  keys that differ.
- **Seeds**: every baseline and distilled student is trained once per seed
  (``randomness.seed``; same seed = same data order and initialisation) into
  ``<work-dir>/seed<S>/<config>``. ``--keep-trained`` keeps a model trained there with that
  seed, the same config and (for a student) the same teacher config, so an interrupted job
  resumes where it stopped and a method can be added without retraining the others.
- **Jobs**: ``--jobs N`` trains the students N at a time, each with cores/N CPU threads (the
  teachers first, alone, with all). The report's times are then those of trainings side by
  side. Another thread count may round floats differently (the toy GFL baseline gave the same AP
  with one thread as with two, in each of seeds 0-2, measured on the earlier 128x128 recipe).

The report (``<work-dir>/results.{md,json,png}``, rewritten after every model) gives per model
the mean and standard deviation over seeds of COCO AP/AP50/AP75 on the toy validation split, and
per distilled model the difference to its baseline paired by seed with its 95% interval and a
verdict (:mod:`mmkd.utils.paired_stats`). ``results.json`` holds every per-seed number.
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_DIR = osp.join(REPO, 'configs', 'toy')
BENCHMARK_JSON = osp.join(REPO, 'benchmarks', 'toy', 'results.json')
METRIC_RE = re.compile(r'coco/bbox_mAP(_50|_75)?: (-?[\d.]+)')
METRICS = ('AP', 'AP50', 'AP75')
#: the seed every teacher is trained with, whatever seeds the students use
TEACHER_SEED = 0
#: detector families by the student's mmdet model type; ``--family`` takes these names
FAMILIES = {'gfl': 'GFL', 'frcnn': 'FasterRCNN'}
#: what must be equal between a distilled config and its baseline, besides the student model
FAIRNESS_KEYS = ('train_dataloader', 'train_cfg', 'param_scheduler', 'optim_wrapper',
                 'test_dataloader', 'test_evaluator')
STAMP = 'trained.json'
#: CPU threads of each training and test (``OMP_NUM_THREADS``); None: torch's default (all
#: cores). ``--jobs N`` sets it to cores // N.
TOOL_THREADS: Optional[int] = None


class BaselineError(ValueError):
    """No fair baseline, or more than one, for a distilled config."""


def run(cmd: List[str], log_file: str) -> float:
    """Run a tool, its output to ``log_file``; return wall time; fail loudly with the log tail.
    With :data:`TOOL_THREADS` set, the tool's torch uses that many CPU threads."""
    start = time.time()
    env = None
    if TOOL_THREADS:
        env = dict(os.environ, OMP_NUM_THREADS=str(TOOL_THREADS),
                   MKL_NUM_THREADS=str(TOOL_THREADS))
    with open(log_file, 'w') as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        with open(log_file) as log:
            tail = ''.join(log.readlines()[-40:])
        raise RuntimeError(f'{" ".join(cmd)} failed (exit {proc.returncode}); end of '
                           f'{log_file}:\n{tail}')
    return time.time() - start


def rel(path: str) -> str:
    return osp.relpath(path, REPO)


def config_stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def seed_label(seed: Optional[int]) -> str:
    """The key of a seed in the results and its work dir name part (None: unseeded)."""
    return 'unseeded' if seed is None else str(seed)


# --- configs ------------------------------------------------------------------------------

def config_digest(config: str, *extra: str) -> str:
    """Digest of a config's full text (and of ``extra``, e.g. its teacher's digest), without the
    ``toy_*`` building blocks that every toy config inherits from
    ``configs/toy/_base_/toy_shapes.py``: what they change is in the keys they are assigned to
    (``model``, ``train_dataloader``, ...), so a change to one family's blocks does not discard
    the other family's trained models."""
    cfg = Config.fromfile(config)
    text = Config({k: v for k, v in cfg.to_dict().items()
                   if not k.startswith('toy_')}).pretty_text + ''.join(extra)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def is_distillation(cfg: Config) -> bool:
    from mmkd.models.algorithms.student_only import is_distillation_cfg
    return is_distillation_cfg(cfg.get('model'))


def student_of(cfg: Config) -> dict:
    """The student's full mmdet model config of a distillation config, as plain dicts."""
    from mmkd.models.algorithms.student_only import student_model_cfg
    return student_model_cfg(cfg.model).to_dict()


def family_of(cfg: Config) -> str:
    """The detector family (a key of :data:`FAMILIES`) of a config's student or model."""
    model_type = (student_of(cfg) if is_distillation(cfg) else cfg.model)['type']
    model_type = model_type.split('.')[-1]
    for family, name in FAMILIES.items():
        if name == model_type:
            return family
    return model_type.lower()


def epochs_of(cfg: Config) -> Optional[int]:
    return cfg.train_cfg.get('max_epochs')


def differences(a, b, prefix: str) -> List[str]:
    """Dotted keys under ``prefix`` where ``a`` and ``b`` (nested dicts/lists) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                found.append(f'{prefix}.{key}')
            else:
                found += differences(a[key], b[key], f'{prefix}.{key}')
        return found
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        found = []
        for i, (x, y) in enumerate(zip(a, b)):
            found += differences(x, y, f'{prefix}[{i}]')
        return found
    return [] if a == b else [prefix]


def plain(value):
    """A config value as plain dicts and lists."""
    return value.to_dict() if hasattr(value, 'to_dict') else value


def baseline_differences(distilled: Config, candidate: Config) -> List[str]:
    """What keeps ``candidate`` (a non-distillation config) from being ``distilled``'s fair
    baseline: its model against the student, then :data:`FAIRNESS_KEYS`."""
    student = student_of(distilled)
    model = plain(candidate.model)
    found = []
    if student.pop('_scope_', 'mmdet') != model.pop('_scope_', candidate.get('default_scope')):
        found.append('model._scope_')
    found += differences(student, model, 'model')
    for key in FAIRNESS_KEYS:
        found += differences(plain(distilled.get(key)), plain(candidate.get(key)), key)
    return found


def find_baseline(config: str, cfg: Config, candidates: Dict[str, Config]) -> str:
    """The one config of ``candidates`` (path -> non-distillation config) that is a fair
    baseline of ``config``; :class:`BaselineError` naming what differs otherwise."""
    diffs = {path: baseline_differences(cfg, c) for path, c in candidates.items()}
    matches = [path for path, d in diffs.items() if not d]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise BaselineError(
            f'{rel(config)}: several toy configs are its baseline (same student, training data, '
            f'schedule, optimizer and test set): {", ".join(rel(p) for p in matches)}. Keep one.')
    closest = sorted(diffs, key=lambda p: len(diffs[p]))[:3]
    lines = [f'  {rel(p)}: differs in {", ".join(diffs[p][:8])}'
             + (f' and {len(diffs[p]) - 8} more' if len(diffs[p]) > 8 else '')
             for p in closest]
    raise BaselineError(
        f'{rel(config)}: no fair baseline. A baseline is a non-distillation config in '
        f'{rel(TOY_DIR)} whose model equals this config\'s student and whose '
        f'{", ".join(FAIRNESS_KEYS)} equal this config\'s. Closest:\n' + '\n'.join(lines)
        + '\nAdd such a baseline config, or make this config\'s settings equal to one.')


def teacher_config_of(config: str, cfg: Config) -> str:
    """``configs/toy/<stem>.py`` for ``teacher_ckpt='.../teacher_<stem>.pth'``."""
    name = osp.basename(cfg.model.get('teacher_ckpt') or '')
    stem = name[len('teacher_'):-len('.pth')]
    path = osp.join(TOY_DIR, stem + '.py')
    if not (name.startswith('teacher_') and name.endswith('.pth') and osp.isfile(path)):
        raise SystemExit(f'{rel(config)}: teacher_ckpt={cfg.model.get("teacher_ckpt")!r} does '
                         f'not name a toy teacher: the main job trains configs/toy/<stem>.py '
                         'into work_dirs/toy/teacher_<stem>.pth.')
    return path


def select_configs(methods: Optional[List[str]], family: Optional[str],
                   configs: Dict[str, Config]) -> List[Tuple[str, str]]:
    """(method, path) of the distillation configs chosen by ``--methods`` / ``--family``;
    ``configs``: every toy config, path -> config."""
    distilled = [p for p in sorted(configs) if is_distillation(configs[p])]
    if methods is None:
        methods = ['all'] if family else ['pkd']
    if methods == ['all']:
        chosen = distilled
    else:
        if 'all' in methods:
            raise SystemExit('--methods all stands alone (every toy distillation config)')
        chosen = []
        for method in methods:
            found = [p for p in distilled if osp.basename(p).startswith(method + '_')]
            if not found:
                known = sorted({osp.basename(p).split('_')[0] for p in distilled})
                raise SystemExit(f'no toy distillation config for method {method!r} '
                                 f'({rel(TOY_DIR)}/{method}_*_toy.py); known: {known}')
            chosen += found
    if family not in (None, 'all'):
        chosen = [p for p in chosen if family_of(configs[p]) == family]
        if not chosen:
            raise SystemExit(f'no toy distillation config of family {family!r} among the '
                             f'methods chosen ({methods or "all"})')
    return [(osp.basename(p).split('_')[0], p) for p in chosen]


# --- training and evaluation --------------------------------------------------------------

def read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: dict) -> None:
    """Write ``data``, atomically (a killed job leaves the old file or the new one)."""
    with open(path + '.tmp', 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(path + '.tmp', path)


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train(config: str, work_dir: str, seed: Optional[int], digest: str,
          keep_trained: bool = False) -> dict:
    """Train ``config`` into ``work_dir`` (``randomness.seed=seed``; None: unseeded); return
    its stamp ``dict(seed, config_digest, train_seconds, checkpoint, kept)``.

    With ``keep_trained``, a model trained there before with the same seed and ``digest`` (and
    whose checkpoint is still there) is kept; its stamp, with its metrics if it was evaluated,
    is returned.
    """
    stamp_path = osp.join(work_dir, STAMP)
    stamp = read_json(stamp_path)
    if (keep_trained and stamp and stamp.get('seed', 'missing') == seed
            and stamp.get('config_digest') == digest
            and osp.isfile(osp.join(work_dir, stamp.get('checkpoint', '')))):
        print(f'  kept {rel(config)} (trained before, seed {seed_label(seed)})', flush=True)
        return dict(stamp, kept=True)
    if osp.isfile(stamp_path):
        os.remove(stamp_path)  # an interrupted retraining must not leave the old stamp valid
    os.makedirs(work_dir, exist_ok=True)
    print(f'  training {rel(config)} (seed {seed_label(seed)}) ...', flush=True)
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if seed is not None:
        cmd += ['--cfg-options', f'randomness.seed={seed}']
    seconds = run(cmd, osp.join(work_dir, 'train.log'))
    stamp = dict(seed=seed, config_digest=digest, train_seconds=round(seconds, 1),
                 checkpoint=osp.relpath(last_checkpoint(work_dir), work_dir))
    write_json(stamp_path, stamp)
    return dict(stamp, kept=False)


def evaluate(config: str, checkpoint: str, work_dir: str) -> Dict[str, float]:
    """COCO AP, AP50, AP75 (percent) of ``checkpoint`` by ``tools/test.py``, and the time the
    test took (``test_seconds``)."""
    log_file = osp.join(work_dir, 'test.log')
    seconds = run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
                   osp.join(work_dir, 'test')], log_file)
    with open(log_file) as f:
        found = METRIC_RE.findall(f.read())
    if not found:
        raise RuntimeError(f'no COCO metrics in {log_file}')
    metrics = {('AP' + suffix.replace('_', '')): round(float(v) * 100, 2) for suffix, v in found}
    return dict(metrics, test_seconds=round(seconds, 1))


def train_and_evaluate(config: str, work_dir: str, seed: Optional[int], digest: str,
                       keep_trained: bool) -> dict:
    """One model, one seed: its training time, whether it was kept, and its metrics (evaluated
    once per trained checkpoint; the metrics are kept in the stamp)."""
    stamp = train(config, work_dir, seed, digest, keep_trained)
    kept = stamp.pop('kept')
    if 'metrics' not in stamp:
        stamp['metrics'] = evaluate(config, osp.join(work_dir, stamp['checkpoint']), work_dir)
        write_json(osp.join(work_dir, STAMP), stamp)
    return dict(train_seconds=stamp['train_seconds'], kept=kept, **stamp['metrics'])


def ensure_teacher(config: str, teacher_ckpt: str, work_root: str) -> dict:
    """The family's teacher: trained with :data:`TEACHER_SEED` and cached at ``teacher_ckpt``
    (beside the stamp ``teacher_ckpt + '.json'``) unless a cached one has the same config and
    seed; evaluated once per trained checkpoint."""
    stem = config_stem(config)
    digest = config_digest(config)
    ckpt_path = osp.join(REPO, teacher_ckpt)
    stamp_path = ckpt_path + '.json'
    work_dir = osp.join(work_root, 'teacher_' + stem)
    stamp = read_json(stamp_path) if osp.isfile(ckpt_path) else None
    cached = bool(stamp and stamp.get('config_digest') == digest
                  and stamp.get('seed', 'missing') == TEACHER_SEED)
    if cached:
        print(f'  teacher {stem}: cached ({teacher_ckpt}, seed {TEACHER_SEED})', flush=True)
    else:
        os.makedirs(work_dir, exist_ok=True)
        trained = train(config, work_dir, TEACHER_SEED, digest)
        os.makedirs(osp.dirname(ckpt_path), exist_ok=True)
        shutil.copy(osp.join(work_dir, trained['checkpoint']), ckpt_path)
        stamp = dict(config_digest=digest, seed=TEACHER_SEED,
                     train_seconds=trained['train_seconds'])
        write_json(stamp_path, stamp)
    if 'metrics' not in stamp:
        os.makedirs(work_dir, exist_ok=True)
        stamp['metrics'] = evaluate(config, ckpt_path, work_dir)
        write_json(stamp_path, stamp)
    return dict(stamp, cached=cached)


# --- report -------------------------------------------------------------------------------

def fmt(value: Optional[float], digits: int = 1) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def summarize(results: dict) -> List[dict]:
    """One row per trained model: mean and sd over seeds, and for a distilled model the
    difference of AP to its baseline paired by seed (its interval and verdict)."""
    from mmkd.utils.paired_stats import mean_sd, paired_difference
    rows = []
    models = results['models']
    for name, model in models.items():
        runs = model['runs']
        if not runs:
            continue
        row = dict(model=name, method=model['method'], family=model['family'],
                   student=model['student'], epochs=model['epochs'], seeds=len(runs),
                   train_minutes=mean_sd(r['train_seconds'] for r in runs.values())[0] / 60)
        teacher = results['teachers'].get(model.get('teacher'))
        row['teacher'] = model.get('teacher')
        row['teacher_AP'] = teacher['AP'] if teacher else None
        for metric in METRICS:
            row[metric], row[metric + '_sd'] = mean_sd(r[metric] for r in runs.values())
        baseline = models.get(model.get('baseline') or '', {}).get('runs')
        diff = paired_difference({s: r['AP'] for s, r in runs.items()},
                                 {s: r['AP'] for s, r in baseline.items()}) if baseline else None
        if diff:
            row.update(dAP=diff.mean, dAP_low=diff.low, dAP_high=diff.high, pairs=diff.n,
                       verdict=diff.verdict)
        rows.append(row)
    return rows


def teacher_rows(results: dict, rows: List[dict]) -> List[dict]:
    """Each teacher with its margin over the baseline(s) its students are compared with."""
    out = []
    for name, teacher in results['teachers'].items():
        baselines = [r for r in rows if r['method'] == 'baseline' and any(
            m.get('teacher') == name and m.get('baseline') == r['model']
            for m in results['models'].values())]
        for base in baselines or [None]:
            row = dict(teacher, teacher=name, baseline=base and base['model'])
            if base:
                best = max(r['AP'] for r in results['models'][base['model']]['runs'].values())
                row.update(margin_mean=teacher['AP'] - base['AP'], margin_best=teacher['AP'] - best)
            out.append(row)
    return out


def markdown(results: dict) -> str:
    """``results.md``: how it was made, the teachers, and one row per student model."""
    rows = summarize(results)
    seeds = results['seeds']
    wall = results.get('wall_seconds')
    cost: Dict[str, float] = {}  # family -> seconds of training and testing
    for model in list(results['teachers'].values()) + [
            dict(r, family=m['family']) for m in results['models'].values()
            for r in m['runs'].values()]:
        cost[model['family']] = cost.get(model['family'], 0.0) + model['train_seconds'] + \
            model.get('test_seconds', 0.0)
    lines = [
        '# Toy benchmark: COCO box mAP on the Toy Shapes validation split', '',
        f'Seeds: {", ".join(seeds)} ({len(seeds)} seed{"s" * (len(seeds) != 1)}; '
        'same seed = same data order and initialisation for every student). Teachers: trained '
        f'once with seed {results["teacher_seed"]}, the same for every student seed.', '',
        f'Command: `{results["command"]}`', '',
        ('Wall time of the whole job: ' + fmt(wall / 60) + ' min.' if wall is not None else
         'Job still running: the table so far.')
        + ' Training and testing time of the models in the tables, teachers included (a model '
        'kept with --keep-trained counts with its recorded times, which the wall time does not '
        'hold): ' + ', '.join(f'{f} {t / 60:.1f} min' for f, t in cost.items()) + '.', '',
        '## Teachers', '',
        '| teacher | family | seed | AP | AP50 | AP75 | baseline | AP - baseline mean AP '
        '| AP - best baseline seed | epochs | train time (min) |',
        '|---|---|---|---|---|---|---|---|---|---|---|']
    for t in teacher_rows(results, rows):
        lines.append(f"| {t['teacher']} | {t['family']} | {t['seed']} | {fmt(t['AP'])} | "
                     f"{fmt(t['AP50'])} | {fmt(t['AP75'])} | {t['baseline'] or '—'} | "
                     f"{fmt(t.get('margin_mean'))} | {fmt(t.get('margin_best'))} | "
                     f"{t['epochs']} | {fmt(t['train_seconds'] / 60)} |")
    lines += [
        '', '## Students', '',
        'AP, AP50, AP75: mean over seeds; sd: sample standard deviation (n - 1). ΔAP: distilled '
        'minus baseline AP, paired by seed (the seeds both have), mean and 95% interval '
        'mean ± t(0.975, n - 1) · sd / √n. Verdict: "better" / "worse" when the interval '
        'excludes 0 on that side, "no difference" when it holds 0.', '',
        '| method | teacher | teacher AP | student | seeds | AP | AP sd | AP50 | AP50 sd | AP75 '
        '| AP75 sd | ΔAP | ΔAP 95% low | ΔAP 95% high | verdict | epochs | train time (min, '
        'mean per seed) |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['teacher'] or '—'} | {fmt(r['teacher_AP'])} | "
            f"{r['student']} | {r['seeds']} | {fmt(r['AP'])} | {fmt(r['AP_sd'])} | "
            f"{fmt(r['AP50'])} | {fmt(r['AP50_sd'])} | {fmt(r['AP75'])} | {fmt(r['AP75_sd'])} | "
            f"{fmt(r.get('dAP'))} | {fmt(r.get('dAP_low'))} | {fmt(r.get('dAP_high'))} | "
            f"{r.get('verdict', '—')} | {r['epochs']} | {fmt(r['train_minutes'])} |")
    return '\n'.join(lines) + '\n'


def chart_rows(results: dict) -> Dict[str, dict]:
    """The rows of :func:`mmkd.visualization.results_chart.plot_results`: teachers, then the
    models with their sd over seeds; a distilled model named ``<method> (<family>)``."""
    chart = {name: dict(role='teacher', **{m: t[m] for m in METRICS})
             for name, t in results['teachers'].items()}
    for r in summarize(results):
        name = r['model'] if r['method'] == 'baseline' else f"{r['method']} ({r['family']})"
        chart[r['model'] if name in chart else name] = dict(
            role=r['method'], **{k: r[k] for m in METRICS for k in (m, m + '_sd')})
    return chart


def write_results(results: dict, work_root: str, plot: bool = False) -> str:
    """Write ``results.md`` and ``results.json`` (and with ``plot`` the chart
    ``results.png``); return the Markdown."""
    text = markdown(results)
    with open(osp.join(work_root, 'results.md'), 'w') as f:
        f.write(text)
    seeds = results['seeds']
    title = (f'COCO box mAP on Toy Shapes, mean over {len(seeds)} seed'
             f'{"s" * (len(seeds) != 1)} ({", ".join(seeds)}); error bars: sd over seeds')
    write_json(osp.join(work_root, 'results.json'),
               dict(results, chart_rows=chart_rows(results), chart_title=title))
    if plot:
        # the table is saved above, so a plotting failure only warns
        try:
            from mmkd.visualization.results_chart import plot_results
            plot_results(chart_rows(results), osp.join(work_root, 'results.png'), title)
        except Exception as err:  # noqa: BLE001
            print(f'warning: no results.png ({type(err).__name__}: {err})')
    return text


def trust_note(seeds: List[str]) -> str:
    """What the seeds run say, and for one seed how far it can be trusted."""
    if len(seeds) > 1:
        return (f'Ran seeds {", ".join(seeds)} ({len(seeds)} seeds): the verdicts come from the '
                '95% intervals of the paired differences in the table.')
    note = (f'Ran one seed ({seeds[0]}): no interval and no verdict. On this small set two runs '
            'of one config differ by more than many of the effects the table shows, so a '
            'single-seed difference to the baseline is not evidence.')
    published = read_json(BENCHMARK_JSON)
    if not published:
        return note + (f' The benchmark over 3 seeds (`make toy-bench`) writes '
                       f'{rel(BENCHMARK_JSON)}; it is not there yet.')
    spreads = [f"{r['model']} AP sd {fmt(r['AP_sd'])} over {r['seeds']} seeds"
               for r in summarize(published) if r['method'] == 'baseline' and r['AP_sd']]
    return note + (f' In the published benchmark ({osp.splitext(rel(BENCHMARK_JSON))[0]}.md): '
                   + '; '.join(spreads) + '. Two independent runs with that spread differ by up '
                   'to about 2.8 sd (95%); differences smaller than that can be noise.')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+',
                        help='methods to distil with, e.g. pkd cwd fgd (configs/toy/<m>_*_toy.py)'
                        '; "all": every toy distillation config. Default: pkd, unless --family')
    parser.add_argument('--family', choices=sorted(FAMILIES) + ['all'],
                        help='only the toy distillation configs of this detector family')
    parser.add_argument('--work-dir', default='work_dirs/toy')
    parser.add_argument('--keep-trained', action='store_true',
                        help='keep models already trained in the work dir with the same seed and '
                        'config (resume an interrupted job; add methods)')
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument('--seeds', type=int, nargs='+',
                       help='randomness.seed of the students, one training each (default: 0; '
                       '-1 alone: unseeded, as mmdet)')
    seeds.add_argument('--seed', type=int, help='the same as --seeds with one seed')
    parser.add_argument('--jobs', type=int, default=1,
                        help='students (baselines and distilled) trained at a time, each with '
                        'cores/JOBS CPU threads (teachers train alone, with all); on 2 cores, '
                        'two toy GFL baselines side by side took 13.1 min, one after the other '
                        'about 14.6 (one timing, on the earlier 128x128 recipe)')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs: at least 1 ({args.jobs})')
    args.seeds = args.seeds or [0 if args.seed is None else args.seed]
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds: each seed once ({args.seeds})')
    if any(s < 0 for s in args.seeds) and len(args.seeds) > 1:
        parser.error('--seeds: a negative seed (unseeded) only alone')
    args.seeds = [None if s < 0 else s for s in args.seeds]
    return args


def plan_job(args) -> Tuple[List[dict], Dict[str, dict]]:
    """Check every chosen config before anything trains: its teacher and its one fair baseline.
    Returns the distilled models and the teachers, each with config, digest and family."""
    configs = {p: Config.fromfile(p) for p in sorted(glob.glob(osp.join(TOY_DIR, '*.py')))}
    candidates = {p: c for p, c in configs.items() if not is_distillation(c)}
    teachers, plan = {}, []
    problems = []
    for method, path in select_configs(args.methods, args.family, configs):
        cfg = configs[path]
        teacher_config = teacher_config_of(path, cfg)
        teacher = config_stem(teacher_config)
        if teacher not in teachers:
            teachers[teacher] = dict(config=teacher_config, ckpt=cfg.model.teacher_ckpt,
                                     family=family_of(configs[teacher_config]),
                                     epochs=epochs_of(configs[teacher_config]))
        try:
            baseline = find_baseline(path, cfg, candidates)
        except BaselineError as err:
            problems.append(str(err))
            continue
        plan.append(dict(method=method, config=path, teacher=teacher, baseline=baseline,
                         family=family_of(cfg), epochs=epochs_of(cfg)))
    if problems:
        raise SystemExit('\n\n'.join(problems))
    return plan, teachers


def main(argv=None) -> None:
    args = parse_args(argv)
    work_root = osp.join(REPO, args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    job_start = time.time()
    plan, teachers = plan_job(args)

    labels = [seed_label(s) for s in args.seeds]
    command = ['python', 'tools/toy_main_job.py'] + (sys.argv[1:] if argv is None else argv)
    results = dict(command=shlex.join(command),
                   seeds=labels, teacher_seed=TEACHER_SEED, wall_seconds=None,
                   teachers={}, models={})
    for item in plan:  # the table's order: each baseline before its first distilled model
        for name, config, role in ((config_stem(item['baseline']), item['baseline'], 'baseline'),
                                   (config_stem(item['config']), item['config'], item['method'])):
            results['models'].setdefault(name, dict(
                method=role, family=item['family'], config=rel(config),
                student=config_stem(item['baseline']), epochs=item['epochs'], runs={},
                teacher=None if role == 'baseline' else item['teacher'],
                baseline=None if role == 'baseline' else config_stem(item['baseline'])))

    for name, teacher in teachers.items():
        print(f'[teacher] {rel(teacher["config"])}', flush=True)
        info = ensure_teacher(teacher['config'], teacher['ckpt'], work_root)
        teacher['digest'] = info['config_digest']
        results['teachers'][name] = dict(
            config=rel(teacher['config']), family=teacher['family'], epochs=teacher['epochs'],
            seed=info['seed'], train_seconds=info['train_seconds'], cached=info['cached'],
            **info['metrics'])
        write_results(results, work_root)

    tasks = []  # (seed, its label, config, digest): each student once per seed
    for seed, label in zip(args.seeds, labels):
        for item in plan:
            models = ((item['baseline'], config_digest(item['baseline'])),
                      (item['config'], config_digest(item['config'],
                                                     teachers[item['teacher']]['digest'])))
            for config, digest in models:
                if (seed, config) not in {(t[0], t[2]) for t in tasks}:  # a shared baseline
                    tasks.append((seed, label, config, digest))
    lock = threading.Lock()

    def train_student(task):
        seed, label, config, digest = task
        print(f'[seed {label}] {rel(config)}', flush=True)
        work_dir = osp.join(work_root, label if seed is None else f'seed{label}',
                            config_stem(config))
        result = train_and_evaluate(config, work_dir, seed, digest, args.keep_trained)
        with lock:
            results['models'][config_stem(config)]['runs'][label] = result
            write_results(results, work_root)  # a long job leaves its table so far

    global TOOL_THREADS
    if args.jobs == 1:
        for task in tasks:
            train_student(task)
    else:
        TOOL_THREADS = max(1, (os.cpu_count() or 1) // args.jobs)
        print(f'{len(tasks)} students, {args.jobs} at a time with {TOOL_THREADS} CPU '
              'thread(s) each', flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            try:
                for done in [pool.submit(train_student, task) for task in tasks]:
                    done.result()
            finally:
                TOOL_THREADS = None

    results['wall_seconds'] = round(time.time() - job_start, 1)
    text = write_results(results, work_root, plot=True)
    print('\n' + text)
    print(trust_note(labels))
    print(f'\nwhole job: {results["wall_seconds"] / 60:.1f} min; report in '
          f'{rel(work_root)}/results.{{md,json,png}}')


if __name__ == '__main__':
    main()
