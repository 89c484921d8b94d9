"""The main job on the built-in data set: teacher, baseline student, distilled students, mAP.

    python tools/toy_main_job.py [--methods pkd ...] [--work-dir work_dirs/toy] [--seed 0]

For each method ``m`` it runs ``configs/toy/m_*_toy.py``. Everything goes through the user's
tools: ``tools/train.py`` trains, ``tools/test.py`` evaluates. The teacher of each detector
family is trained once and cached (``work_dirs/toy/teacher_<config>.pth``, retrained when its
config changes); the baseline student of each family trains with the same schedule as the
distilled ones. The table gives COCO AP/AP50/AP75 on the toy validation split and the
training time of each model; it is also written as Markdown to ``<work-dir>/results.md`` and as
a bar chart to ``<work-dir>/results.png``.

Every model is trained with ``randomness.seed`` set (``--seed``, 0 by default; ``--seed -1`` for
mmdet's unseeded behaviour). On CPU a seeded run repeats exactly on the same machine, so the table
in README.md is the table a user gets. Different seeds can differ a lot on this small set (for
GFL by up to 30 AP for one method; see README.md), so compare methods over several seeds.
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METRIC_RE = re.compile(r'coco/bbox_mAP(_50|_75)?: (-?[\d.]+)')


def run(cmd: List[str], log_file: str) -> float:
    """Run a tool, its output to ``log_file``; return wall time; fail loudly with the log tail."""
    start = time.time()
    with open(log_file, 'w') as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(log_file) as log:
            tail = ''.join(log.readlines()[-40:])
        raise RuntimeError(f'{" ".join(cmd)} failed (exit {proc.returncode}); end of '
                           f'{log_file}:\n{tail}')
    return time.time() - start


def read_seed(work_dir: str) -> Optional[int]:
    """The seed a model in ``work_dir`` was trained with (None: unseeded or unknown)."""
    path = osp.join(work_dir, 'seed.txt')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return int(text) if text.lstrip('-').isdigit() else None


def train(config: str, work_dir: str, keep_trained: bool = False,
          seed: Optional[int] = None) -> float:
    """Train ``config`` into ``work_dir`` (seeded unless ``seed`` is None); return the training
    time in seconds.

    With ``keep_trained``, a model already trained there with the same seed is kept (its recorded
    time returned), so that a method can be added to the table without training the others again.
    """
    time_file = osp.join(work_dir, 'train_seconds.txt')
    if keep_trained and osp.isfile(time_file) and osp.isfile(
            osp.join(work_dir, 'last_checkpoint')) and read_seed(work_dir) == seed:
        print(f'  kept {osp.relpath(config, REPO)} (already trained, seed {seed})', flush=True)
        with open(time_file) as f:
            return float(f.read())
    os.makedirs(work_dir, exist_ok=True)
    print(f'  training {osp.relpath(config, REPO)} (seed {seed}) ...', flush=True)
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
    if seed is not None:
        cmd += ['--cfg-options', f'randomness.seed={seed}']
    seconds = run(cmd, osp.join(work_dir, 'train.log'))
    with open(time_file, 'w') as f:
        f.write(f'{seconds:.1f}\n')
    with open(osp.join(work_dir, 'seed.txt'), 'w') as f:
        f.write(f'{seed}\n')
    return seconds


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def evaluate(config: str, checkpoint: str, work_dir: str) -> Dict[str, float]:
    log_file = osp.join(work_dir, 'test.log')
    run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         osp.join(work_dir, 'test')], log_file)
    with open(log_file) as f:
        found = METRIC_RE.findall(f.read())
    if not found:
        raise RuntimeError(f'no COCO metrics in {log_file}')
    metrics = {('AP' + suffix.replace('_', '')): float(v) * 100 for suffix, v in found}
    return metrics


def config_digest(config: str) -> str:
    return hashlib.sha1(Config.fromfile(config).pretty_text.encode()).hexdigest()[:12]


def ensure_teacher(teacher_ckpt: str, work_root: str, rows: Dict,
                   seed: Optional[int] = None) -> None:
    """Train the teacher whose cache file is ``teacher_ckpt`` unless a current one (same config,
    same seed) exists."""
    stem = osp.basename(teacher_ckpt)[len('teacher_'):-len('.pth')]
    config = osp.join(REPO, 'configs', 'toy', stem + '.py')
    if stem in rows:
        return
    digest = config_digest(config)
    stamp = teacher_ckpt + '.json'
    ckpt_path = osp.join(REPO, teacher_ckpt)
    work_dir = osp.join(work_root, 'teacher_' + stem)
    info: Optional[dict] = None
    if osp.isfile(ckpt_path) and osp.isfile(osp.join(REPO, stamp)):
        with open(osp.join(REPO, stamp)) as f:
            info = json.load(f)
        if info.get('config_digest') != digest or info.get('seed', None) != seed:
            info = None
    if info is None:
        seconds = train(config, work_dir, seed=seed)
        shutil.copy(last_checkpoint(work_dir), ckpt_path)
        info = dict(config_digest=digest, train_seconds=seconds, seed=seed)
        with open(osp.join(REPO, stamp), 'w') as f:
            json.dump(info, f)
        cached = False
    else:
        print(f'  teacher {stem}: cached ({teacher_ckpt})', flush=True)
        cached = True
    metrics = evaluate(config, ckpt_path, work_dir)
    rows[stem] = dict(role='teacher', config=config, time=info['train_seconds'], cached=cached,
                      **metrics)


def write_results(rows: Dict[str, dict], work_root: str) -> str:
    """Write the table so far (Markdown and JSON); return the Markdown table."""
    lines = ['| model | role | AP | AP50 | AP75 | train time |', '|---|---|---|---|---|---|']
    for name, r in rows.items():
        when = f"{r['time'] / 60:.1f} min" + (' (cached)' if r.get('cached') else '')
        lines.append(f"| {name} | {r['role']} | {r['AP']:.1f} | {r['AP50']:.1f} | "
                     f"{r['AP75']:.1f} | {when} |")
    table = '\n'.join(lines)
    with open(osp.join(work_root, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(work_root, 'results.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', default=['pkd'],
                        help='methods to distil with, e.g. pkd cwd fgd (configs/toy/<m>_*_toy.py)')
    parser.add_argument('--work-dir', default='work_dirs/toy')
    parser.add_argument('--keep-trained', action='store_true',
                        help='keep baselines/students already trained in the work dir')
    parser.add_argument('--seed', type=int, default=0,
                        help='randomness.seed of every model trained (-1: unseeded, as mmdet)')
    args = parser.parse_args()
    seed = None if args.seed < 0 else args.seed
    work_root = osp.join(REPO, args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    job_start = time.time()

    configs = []
    for method in args.methods:
        found = sorted(glob.glob(osp.join(REPO, 'configs', 'toy', f'{method}_*_toy.py')))
        if not found:
            known = sorted({osp.basename(p).split('_')[0]
                            for p in glob.glob(osp.join(REPO, 'configs', 'toy', '*_toy.py'))})
            raise SystemExit(f'no toy config for method {method!r}; known: {known}')
        configs += [(method, c) for c in found]

    rows: Dict[str, dict] = {}
    for method, config in configs:
        cfg = Config.fromfile(config)
        print(f'[{method}] {osp.relpath(config, REPO)}', flush=True)
        ensure_teacher(cfg.model.teacher_ckpt, work_root, rows, seed)
        student_stem = osp.splitext(osp.basename(cfg.model.architecture.cfg_path))[0] + '_toy'
        if student_stem not in rows:
            baseline = osp.join(REPO, 'configs', 'toy', student_stem + '.py')
            work_dir = osp.join(work_root, 'baseline_' + student_stem)
            seconds = train(baseline, work_dir, args.keep_trained, seed)
            rows[student_stem] = dict(role='baseline', config=baseline, time=seconds,
                                      **evaluate(baseline, last_checkpoint(work_dir), work_dir))
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(work_root, name)
        seconds = train(config, work_dir, args.keep_trained, seed)
        rows[name] = dict(role=method, config=config, time=seconds,
                          **evaluate(config, last_checkpoint(work_dir), work_dir))
        write_results(rows, work_root)  # a long job leaves its table so far

    table = write_results(rows, work_root)
    # the same table as a bar chart; the table is saved above, so a plotting failure only warns
    try:
        from mmkd.visualization.results_chart import plot_results
        plot_results(rows, osp.join(work_root, 'results.png'))
    except Exception as err:  # noqa: BLE001
        print(f'warning: no results.png ({type(err).__name__}: {err})')
    seeded = 'unseeded' if seed is None else f'seed {seed}'
    print(f'\nCOCO box mAP on the Toy Shapes validation split (100 images; {seeded}):\n' + table)
    print(f'\nwhole job: {(time.time() - job_start) / 60:.1f} min; table in '
          f'{osp.relpath(work_root, REPO)}/results.md')


if __name__ == '__main__':
    main()
