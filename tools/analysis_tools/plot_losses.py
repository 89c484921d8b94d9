"""Training curves of one or several runs from mmengine's JSON logs.

    python tools/analysis_tools/plot_losses.py WORK_DIR [WORK_DIR ...] --out curves.png
        [--keys REGEX]

Reads every ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (else ``scalars.json``; a
``.json`` file may also be given directly), one JSON object per line, runs of one work dir
(e.g. resumed) merged in time order, later values replacing earlier ones at the same step.
One panel per scalar, every run a line in it (legend = work-dir name):

* the total ``loss`` (task + distillation losses, as mmengine sums them), then the task losses
  (``loss_*``; a distillation run's ``student.loss_*`` shares the panel of the plain name, so
  baselines and distilled students compare), then every distillation loss (``distill.*``, per
  level as logged), in natural order (fpn2 < fpn10);
* validation metrics (``coco/bbox_mAP``, ``_50``, ``_75``, or any ``*/...mAP...`` key); COCO's
  -1 ("no objects of this size in the validation set") is not a value and is left out.

x axis: the training iteration (``step``/``iter`` of the training lines). Validation lines of an
epoch-based run carry the epoch as ``step``; they are placed at the last logged iteration of
that epoch (the end of the epoch, up to the logging interval).
"""
import argparse
import glob
import math
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

from mmkd.utils.run_logs import json_lines

#: what COCO's evaluator writes for a metric with no objects (e.g. bbox_mAP_s without small ones)
COCO_NO_OBJECTS = -1.0
NOT_CURVES = {'lr', 'base_lr', 'momentum', 'time', 'data_time', 'memory', 'grad_norm', 'epoch',
              'iter', 'step'}
PANEL_W_IN, PANEL_H_IN, NCOLS = 4.0, 3.0, 3


def log_files(path: str) -> List[str]:
    """The JSON log files of a work dir (or the file itself), oldest first."""
    if osp.isfile(path):
        return [path]
    files = []
    for vis in sorted(glob.glob(osp.join(path, '*', 'vis_data'))):
        stamp = osp.basename(osp.dirname(vis))
        main = osp.join(vis, stamp + '.json')
        if osp.isfile(main):
            files.append(main)
        elif osp.isfile(osp.join(vis, 'scalars.json')):
            files.append(osp.join(vis, 'scalars.json'))
    if not files:
        files = sorted(glob.glob(osp.join(path, 'vis_data', '*.json')))
    return files


def is_loss(key: str) -> bool:
    return key.split('.')[-1].startswith('loss')


def is_val(key: str) -> bool:
    return ('/' in key and 'mAP' in key) or key.endswith(('bbox_mAP', 'bbox_mAP_50',
                                                         'bbox_mAP_75'))


def read_run(path: str) -> Tuple[Dict[str, Dict[float, float]], Dict[str, Dict[float, float]]]:
    """(train curves, val curves): key -> {x: value}; see the module docstring for x."""
    train: Dict[str, Dict[float, float]] = {}
    val_by_step: Dict[str, Dict[float, float]] = {}
    epoch_end: Dict[int, float] = {}
    epoch_based = False
    files = log_files(path)
    if not files:
        raise FileNotFoundError(f'no mmengine JSON log under {path!r} (expected '
                                '<work_dir>/<timestamp>/vis_data/<timestamp>.json)')
    for file in files:
        for rec in json_lines(file):
            vals = {k: v for k, v in rec.items() if is_val(k) and isinstance(v, (int, float))}
            if vals and not any(is_loss(k) for k in rec):
                step = float(rec.get('step', 0))
                for k, v in vals.items():
                    if v != COCO_NO_OBJECTS:
                        val_by_step.setdefault(k, {})[step] = float(v)
                continue
            x = rec.get('iter', rec.get('step'))
            if x is None:
                continue
            if 'epoch' in rec:
                epoch_based = True
                epoch_end[int(rec['epoch'])] = max(epoch_end.get(int(rec['epoch']), 0), float(x))
            for k, v in rec.items():
                if k not in NOT_CURVES and is_loss(k) and isinstance(v, (int, float)):
                    # a baseline logs loss_cls, a distillation run student.loss_cls:
                    # one panel, so that the two compare
                    k = k[len('student.'):] if k.startswith('student.') else k
                    train.setdefault(k, {})[float(x)] = float(v)
    val: Dict[str, Dict[float, float]] = {}
    for k, points in val_by_step.items():
        for step, v in points.items():
            x = epoch_end.get(int(step), step) if epoch_based else step
            val.setdefault(k, {})[x] = v
    return train, val


def natural_key(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', key)]


def panel_kind(key: str) -> str:
    """What a panel shows: the total loss, a task loss, a distillation loss or a metric."""
    if key == 'loss':
        return 'total: task + distill'
    if is_val(key):
        return 'val'
    return 'distill' if key.startswith('distill.') else 'task'


def order_keys(keys) -> List[str]:
    def group(k):
        if k == 'loss':
            return 0
        if is_val(k):
            return 3
        if k.startswith('distill.'):
            return 2
        return 1
    return sorted(keys, key=lambda k: (group(k), natural_key(k)))


def grid_shape(num_panels: int) -> Tuple[int, int]:
    ncols = min(NCOLS, max(1, num_panels))
    return int(math.ceil(num_panels / ncols)), ncols


def figure_px(num_panels: int) -> Tuple[int, int]:
    """(width, height) in pixels of the chart with ``num_panels`` panels."""
    from mmkd.visualization.figures import DPI
    nrows, ncols = grid_shape(num_panels)
    return int(ncols * PANEL_W_IN * DPI), int((nrows * PANEL_H_IN + 0.75) * DPI)


def plot_runs(work_dirs: List[str], out: str, keys_regex: str = None) -> dict:
    from matplotlib.figure import Figure

    from mmkd.visualization.figures import DPI
    runs = []
    names = [osp.basename(osp.normpath(w)) for w in work_dirs]
    if len(set(names)) < len(names):
        names = [osp.normpath(w) for w in work_dirs]
    for name, wd in zip(names, work_dirs):
        train, val = read_run(wd)
        runs.append((name, {**train, **val}))
    keys = order_keys({k for _, curves in runs for k in curves})
    if keys_regex:
        keys = [k for k in keys if re.search(keys_regex, k)]
    if not keys:
        raise SystemExit('no loss or mAP scalars found in the logs')
    nrows, ncols = grid_shape(len(keys))
    height = nrows * PANEL_H_IN + 0.75
    fig = Figure(figsize=(ncols * PANEL_W_IN, height), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / height, top=1 - 0.95 / height,
                        wspace=0.3, hspace=0.55)
    colors = [f'C{i % 10}' for i in range(len(runs))]
    summary, titles = {}, {}
    for idx, key in enumerate(keys):
        ax = axes[idx // ncols, idx % ncols]
        last = []
        for (name, curves), color in zip(runs, colors):
            if key not in curves:
                continue
            xs = sorted(curves[key])
            ys = [curves[key][x] for x in xs]
            ax.plot(xs, ys, '-o' if is_val(key) or len(xs) < 3 else '-', ms=3, lw=1.2,
                    color=color, label=name)
            last.append(f'{ys[-1]:.3g}')
            summary.setdefault(key, {})[name] = dict(x=xs, y=ys)
        titles[key] = f'{key} ({panel_kind(key)}); last: {", ".join(last)}'
        ax.set_title(titles[key], fontsize=8)
        ax.set_xlabel('iteration', fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(keys), nrows * ncols):
        axes[k // ncols, k % ncols].axis('off')
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc='upper center', ncol=min(len(labels), 4), fontsize=8,
               bbox_to_anchor=(0.5, 1 - 0.3 / height))
    fig.suptitle(f'{len(runs)} run(s), {len(keys)} scalars: losses per iteration and '
                 'validation mAP', fontsize=10, y=1 - 0.05 / height, va='top')
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return dict(keys=keys, runs=names, curves=summary, titles=titles)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs (or JSON log files)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--keys', help='only scalars matching this regular expression')
    args = parser.parse_args(argv)
    result = plot_runs(args.work_dirs, args.out, args.keys)
    print(f'wrote {args.out}: {len(result["keys"])} panels ({", ".join(result["keys"])}) for '
          f'{len(result["runs"])} run(s)')
    return result


if __name__ == '__main__':
    main()
