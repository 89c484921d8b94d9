"""A distilled run against its baseline: one Markdown report with its pictures.

Everything comes from what mmengine and mmkd's hooks already write into the two work
directories (read by :class:`mmkd.utils.run_logs.RunLogs`); a number that is not there is named
in the report together with the setting that produces it.
"""
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from mmkd.utils.run_logs import RunLogs
from .figures import panel_figure, save_figure

#: the COCO summary metrics in report order: (label, key suffix)
AP_ROWS = (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75', 'bbox_mAP_75'),
           ('AP small', 'bbox_mAP_s'), ('AP medium', 'bbox_mAP_m'), ('AP large', 'bbox_mAP_l'))
CLASS_AP = re.compile(r'^(?:.*/)?(.+)_precision$')
DETECTION_SUM = 'detection losses (sum)'
DISTILL, WEIGHT = 'distill.', 'distill_weight.'
NCOLS = 3


def _metric(metrics: Dict[str, float], suffix: str) -> Optional[float]:
    for key, value in metrics.items():
        if key == suffix or key.endswith('/' + suffix):
            return value
    return None


def _ap(value: Optional[float]) -> str:
    """COCO metrics are logged as fractions rounded to 3 decimals: x100 with 1 decimal is exact;
    -1 (no object of that size) is shown as n/a."""
    if value is None:
        return 'missing'
    return 'n/a' if value < 0 else f'{100 * value:.1f}'


def _delta(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or a < 0 or b < 0:
        return ''
    return f'{100 * (a - b):+.1f}'


def detection_curve(run: RunLogs) -> Tuple[List[int], List[float]]:
    """The summed detection losses per logged iteration: ``student.loss_*`` of a distillation
    run, ``loss_*`` of a detector trained alone."""
    keys = [k for k in run.train_keys() if k.startswith('student.loss')] or \
        [k for k in run.train_keys() if k.startswith('loss_')]
    its = [i for i in sorted(run.train) if all(k in run.train[i] for k in keys)] if keys else []
    return its, [sum(float(run.train[i][k]) for k in keys) for i in its]


def distill_terms(run: RunLogs) -> List[str]:
    return [k for k in run.train_keys() if k.startswith(DISTILL) and 'loss' in k]


def term_group(term: str) -> str:
    """One panel per loss over its levels: ``distill.loss_fgd_fpn3_fg`` -> ``loss_fgd_fpn*_fg``."""
    return re.sub(r'fpn\d+', 'fpn*', term[len(DISTILL):])


def loss_figure(distilled: RunLogs, baseline: RunLogs, path: str) -> List[str]:
    """Panel 1: the summed detection losses of both runs; then one panel per distillation loss
    (its levels as lines) with the distilled run's detection losses dashed, on a log scale; last,
    the distillation weights when logged. Returns the panel titles."""
    groups: Dict[str, List[str]] = {}
    for term in distill_terms(distilled):
        groups.setdefault(term_group(term), []).append(term)
    weights = [k for k in distilled.train_keys() if k.startswith(WEIGHT)]
    titles = [DETECTION_SUM] + list(groups) + (['distillation weights'] if weights else [])
    nrows = int(math.ceil(len(titles) / NCOLS))
    fig, axes = panel_figure(nrows, min(NCOLS, len(titles)),
                             f'{distilled.name} (distilled) vs {baseline.name} (baseline): losses '
                             'as logged, per iteration')
    axes = axes.flatten()
    det_d, det_b = detection_curve(distilled), detection_curve(baseline)
    ax = axes[0]
    ax.plot(*det_d, color='C0', lw=1.2, label=f'{distilled.name}')
    ax.plot(*det_b, color='C1', lw=1.2, label=f'{baseline.name}')
    ax.set_title(DETECTION_SUM, fontsize=8)
    ax.legend(fontsize=6)
    for ax, (group, terms) in zip(axes[1:], groups.items()):
        for n, term in enumerate(terms):
            its, vals = distilled.curve(term)
            ax.plot(its, [max(v, 1e-12) for v in vals], color=f'C{n % 10}', lw=1.0,
                    label=term[len(DISTILL):])
        ax.plot(*det_d, color='k', ls='--', lw=1.0, label='detection (sum)')
        ax.set_yscale('log')
        ax.set_title(group, fontsize=8)
        ax.legend(fontsize=5)
    if weights:
        ax = axes[len(groups) + 1]
        for n, key in enumerate(weights):
            ax.plot(*distilled.curve(key), color=f'C{n % 10}', lw=1.0, label=key[len(WEIGHT):])
        ax.set_title('distillation weights (multipliers)', fontsize=8)
        ax.legend(fontsize=5)
    for ax in axes[:len(titles)]:
        ax.set_xlabel('iteration', fontsize=7)
        ax.tick_params(which='both', labelsize=6)
        ax.grid(alpha=0.3)
    for ax in axes[len(titles):]:
        ax.axis('off')
    save_figure(fig, path)
    return titles


def clip_setting(cfg) -> Optional[float]:
    clip = (cfg.get('optim_wrapper') or {}).get('clip_grad') if cfg is not None else None
    return float(clip['max_norm']) if clip and 'max_norm' in clip else None


def grad_norm_figure(runs: List[RunLogs], clips: List[Optional[float]], path: str) -> None:
    fig, axes = panel_figure(1, 1, 'gradient norm as logged (before clipping), and the clip '
                             'threshold', panel_in=4.5)
    ax = axes[0, 0]
    for n, (run, clip) in enumerate(zip(runs, clips)):
        its, vals = run.curve('grad_norm')
        if its:
            ax.plot(its, vals, color=f'C{n}', lw=1.2, label=run.name)
        if clip is not None:
            ax.axhline(clip, color=f'C{n}', ls=':', lw=1.0, label=f'{run.name}: max_norm {clip:g}')
    ax.set_xlabel('iteration', fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    save_figure(fig, path)


def grad_norm_row(run: RunLogs, clip: Optional[float]) -> dict:
    """How often the logged gradient norm was above the clip threshold."""
    its, vals = run.curve('grad_norm')
    cfg = run.config()
    window = (cfg.get('log_processor') or {}).get('window_size', 10) if cfg else '?'
    interval = ((cfg.get('default_hooks') or {}).get('logger') or {}).get('interval', 10) \
        if cfg else '?'
    return dict(run=run.name, max_norm=clip, logged=len(vals),
                above=sum(v > clip for v in vals) if clip is not None else None,
                max=max(vals) if vals else None, window=window, interval=interval)


def build_report(distilled_dir: str, baseline_dir: str, out: str) -> dict:
    """Write the report ``out`` (Markdown) and its PNGs beside it; return its numbers."""
    distilled, baseline = RunLogs(distilled_dir), RunLogs(baseline_dir)
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(out))[0]
    numbers: dict = dict(runs=[distilled.name, baseline.name])
    lines = [f'# Distillation report: {distilled.name} vs {baseline.name}', '',
             f'- distilled run: `{distilled.work_dir}`', f'- baseline run: `{baseline.work_dir}`']

    teacher = distilled.teacher_map()
    numbers['teacher_map'] = teacher.get('map') if teacher else None
    if teacher:
        where = (f' on {teacher["num_images"]} validation image(s)'
                 if 'num_images' in teacher else '')
        lines.append(f'- teacher: {teacher.get("metric_key", "mAP")} {_ap(teacher["map"])} '
                     f'(x100){where}, from mmkd\'s teacher check')
    else:
        lines.append('- teacher: mAP unknown (no teacher check in the distilled run: it is on '
                     'with `teacher_check = dict(...)` in mmkd\'s distillation configs)')

    # ---- accuracy
    (m_d, src_d), (m_b, src_b) = distilled.final_metrics(), baseline.final_metrics()
    numbers['metrics'] = dict(distilled=m_d, baseline=m_b)
    lines += ['', '## Accuracy', '',
              f'COCO metrics x100. Distilled: {src_d}. Baseline: {src_b}.', '',
              f'| metric | {distilled.name} | {baseline.name} | delta |', '|---|---:|---:|---:|']
    for label, suffix in AP_ROWS:
        a, b = _metric(m_d, suffix), _metric(m_b, suffix)
        lines.append(f'| {label} | {_ap(a)} | {_ap(b)} | {_delta(a, b)} |')
    classes_d = {CLASS_AP.match(k).group(1): v for k, v in m_d.items() if CLASS_AP.match(k)}
    classes_b = {CLASS_AP.match(k).group(1): v for k, v in m_b.items() if CLASS_AP.match(k)}
    lines += ['', '## AP per class', '']
    if classes_d or classes_b:
        lines += [f'| class | {distilled.name} | {baseline.name} | delta |',
                  '|---|---:|---:|---:|']
        for name in list(classes_d) + [c for c in classes_b if c not in classes_d]:
            a, b = classes_d.get(name), classes_b.get(name)
            lines.append(f'| {name} | {_ap(a)} | {_ap(b)} | {_delta(a, b)} |')
    missing = [r.name for r, c in ((distilled, classes_d), (baseline, classes_b)) if not c]
    if missing:
        lines.append('')
        lines.append(f'Per-class AP is not in the logs of {", ".join(missing)}: CocoMetric writes '
                     'it with `classwise=True`, i.e. train with `--cfg-options '
                     'val_evaluator.classwise=True` or test with `tools/test.py CONFIG CKPT '
                     '--work-dir WORK_DIR --cfg-options test_evaluator.classwise=True`.')
    numbers['classes'] = dict(distilled=classes_d, baseline=classes_b)

    # ---- losses
    loss_png = f'{stem}_losses.png'
    titles = loss_figure(distilled, baseline, osp.join(out_dir, loss_png))
    its, det = detection_curve(distilled)
    det_at = dict(zip(its, det))
    lines += ['', '## Losses', '', f'![losses]({loss_png})', '',
              'Each distillation term at the last logged iteration and its ratio to the summed '
              'detection losses logged at that iteration (values as logged: mmengine\'s running '
              'mean over `log_processor.window_size` iterations).', '',
              '| term | last value | ratio to detection |', '|---|---:|---:|']
    numbers['terms'] = {}
    for term in distill_terms(distilled):
        t_its, vals = distilled.curve(term)
        ratio = vals[-1] / det_at[t_its[-1]] if det_at.get(t_its[-1]) else None
        numbers['terms'][term] = dict(iter=t_its[-1], value=vals[-1], ratio=ratio)
        lines.append(f'| {term} | {vals[-1]:.4g} | '
                     f'{"-" if ratio is None else format(ratio, ".3g")} |')
    if not numbers['terms']:
        lines.append('| (no distillation term logged) | | |')
    numbers['loss_panels'] = titles

    balance = distilled.record('loss_balance.json')
    numbers['loss_balance'] = balance
    lines += ['', '## Loss balance at the start', '']
    if balance:
        lines += [f'Measured by mmkd\'s loss-balance monitor over iterations '
                  f'{balance["first_iter"]}-{balance["last_iter"]} (mode '
                  f'`{balance["settings"]["mode"]}`): mean of each term, ratio to the mean of the '
                  'summed detection losses, share of the gradient norm at the student\'s neck '
                  'output.', '', '| term | mean | ratio | grad share |', '|---|---:|---:|---:|']
        for row in balance['rows']:
            share = '-' if row['grad_share'] is None else f'{100 * row["grad_share"]:.1f}%'
            ratio = '-' if row['ratio'] is None else f'{row["ratio"]:.3g}'
            mean = '-' if row['mean'] is None else f'{row["mean"]:.4g}'
            lines.append(f'| {row["term"]} | {mean} | {ratio} | {share} |')
        if balance.get('auto_weights'):
            lines += ['', 'Automatic balancing (mmkd\'s own, not from a paper) then set the '
                      'multipliers: ' + ', '.join(f'`{t}` {w:.4g}'
                                                  for t, w in balance['auto_weights'].items())]
    else:
        lines.append('Not measured: mmkd\'s loss-balance monitor writes it (`loss_balance = '
                     'dict(mode=\'monitor\')`, on in mmkd\'s distillation configs).')

    # ---- gradient norm
    runs = [distilled, baseline]
    clips = [clip_setting(r.config()) for r in runs]
    grad_png = f'{stem}_grad_norm.png'
    grad_norm_figure(runs, clips, osp.join(out_dir, grad_png))
    rows = [grad_norm_row(r, c) for r, c in zip(runs, clips)]
    numbers['grad_norm'] = rows
    lines += ['', '## Gradient norm and clipping', '', f'![gradient norm]({grad_png})', '',
              '| run | clip max_norm | logged values above it | largest logged |',
              '|---|---:|---:|---:|']
    for row in rows:
        clip = '-' if row['max_norm'] is None else f'{row["max_norm"]:g}'
        above = '-' if row['above'] is None else f'{row["above"]} of {row["logged"]}'
        largest = '-' if row['max'] is None else f'{row["max"]:.4g}'
        lines.append(f'| {row["run"]} | {clip} | {above} | {largest} |')
    lines.append('')
    lines.append('mmengine logs `grad_norm` only when `optim_wrapper.clip_grad` is set, as a '
                 'running mean over `log_processor.window_size` iterations (here: ' + ', '.join(
                     f'{r["run"]} {r["window"]}, every {r["interval"]}' for r in rows) +
                 '); for the exact number of clipped steps log every iteration without '
                 'averaging (`log_processor.window_size=1`, `default_hooks.logger.interval=1`).')
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    numbers['files'] = [out, osp.join(out_dir, loss_png), osp.join(out_dir, grad_png)]
    return numbers
