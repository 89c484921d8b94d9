"""The main job's mAP table as a bar chart, with error bars over seeds.

    python -m mmkd.visualization.results_chart work_dirs/toy/results.json --out results.png

``rows``: model name -> ``dict(role=..., AP=..., AP50=..., AP75=...)`` (percent; the mean over
seeds), and optionally ``AP_sd``, ``AP50_sd``, ``AP75_sd`` (the standard deviation over seeds),
drawn as error bars. ``tools/toy_main_job.py`` writes these rows under ``chart_rows`` in its
``results.json``.
"""
import argparse
import json
from typing import Dict

from .figures import DPI, save_figure

METRICS = ('AP', 'AP50', 'AP75')
ROLE_COLORS = {'teacher': '#4c72b0', 'baseline': '#8c8c8c'}
DISTILLED_COLOR = '#dd8452'
CHART_W_IN, CHART_H_IN = 10.0, 5.0


def results_chart_px() -> tuple:
    """(width, height) in pixels of :func:`plot_results`' PNG."""
    return int(CHART_W_IN * DPI), int(CHART_H_IN * DPI)


def plot_results(rows: Dict[str, dict], out_png: str, title: str = None) -> str:
    """Grouped bars (AP, AP50, AP75) per model, coloured by role, values written on the bars,
    error bars (+- one standard deviation) where a row gives ``<metric>_sd``.

    Returns the path written.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    if not rows:
        raise ValueError('plot_results: no rows to plot')
    names = list(rows)
    fig = Figure(figsize=(CHART_W_IN, CHART_H_IN), dpi=DPI)
    ax = fig.add_axes([0.07, 0.36, 0.9, 0.48])
    width = 0.8 / len(METRICS)
    hatches = ('', '//', '..')
    top, bottom = 0.0, 0.0
    for m, (metric, hatch) in enumerate(zip(METRICS, hatches)):
        for i, name in enumerate(names):
            role = rows[name].get('role', '')
            value = float(rows[name].get(metric, float('nan')))
            sd = rows[name].get(metric + '_sd')
            color = ROLE_COLORS.get(role, DISTILLED_COLOR)
            x = i + (m - (len(METRICS) - 1) / 2) * width
            ax.bar(x, value, width, color=color, hatch=hatch, edgecolor='black', linewidth=0.5)
            end = value
            if sd is not None and value == value:
                ax.errorbar(x, value, yerr=float(sd), ecolor='black', elinewidth=0.8,
                            capsize=2)
                end = value + float(sd)
            ax.text(x, end, f'{value:.1f}', ha='center', va='bottom', fontsize=7, rotation=90)
            if value == value:
                top, bottom = max(top, end), min(bottom, value)  # COCO's -1: no GT
    ax.set_xticks(range(len(names)))
    # teachers and baselines say so under their name; any other role is a distillation method
    ax.set_xticklabels([f'{n}\n({rows[n]["role"]})' if rows[n].get('role') in ROLE_COLORS
                        else n for n in names], rotation=20 if len(names) < 8 else 35,
                       ha='right', fontsize=7)
    ax.set_ylabel('COCO box AP (%)')
    ax.set_ylim(bottom * 1.1, max(top * 1.15, 1.0))
    ax.grid(axis='y', alpha=0.3)
    legend = [Patch(facecolor='white', edgecolor='black', hatch=h, label=m)
              for m, h in zip(METRICS, hatches)]
    legend += [Patch(color=c, label=r) for r, c in ROLE_COLORS.items()]
    legend.append(Patch(color=DISTILLED_COLOR, label='distilled'))
    ax.legend(handles=legend, fontsize=7, ncol=len(legend), loc='lower left',
              bbox_to_anchor=(0.0, 1.0), frameon=False)
    best = max(names, key=lambda n: rows[n].get('AP', float('-inf')))
    fig.suptitle(title or f'COCO box mAP of {len(names)} models (best AP: {best}, '
                 f'{rows[best].get("AP", float("nan")):.1f})', fontsize=10)
    return save_figure(fig, out_png)


def main() -> None:
    parser = argparse.ArgumentParser(description='Bar chart of a results.json mAP table')
    parser.add_argument('results_json')
    parser.add_argument('--out', required=True, help='PNG to write')
    args = parser.parse_args()
    with open(args.results_json) as f:
        results = json.load(f)
    plot_results(results.get('chart_rows', results), args.out, results.get('chart_title'))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
