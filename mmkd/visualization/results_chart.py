"""The main job's mAP table as a bar chart.

    python -m mmkd.visualization.results_chart work_dirs/toy/results.json --out results.png

``rows`` is the dict that ``tools/toy_main_job.py`` writes to ``results.json``: model name ->
``dict(role=..., AP=..., AP50=..., AP75=..., ...)`` (percent).
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
    """Grouped bars (AP, AP50, AP75) per model, coloured by role, values written on the bars.

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
            color = ROLE_COLORS.get(role, DISTILLED_COLOR)
            x = i + (m - (len(METRICS) - 1) / 2) * width
            ax.bar(x, value, width, color=color, hatch=hatch, edgecolor='black', linewidth=0.5)
            ax.text(x, value, f'{value:.1f}', ha='center', va='bottom', fontsize=7, rotation=90)
            if value == value:
                top, bottom = max(top, value), min(bottom, value)  # COCO's -1: no GT
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f'{n}\n({rows[n].get("role", "")})' for n in names], rotation=20,
                       ha='right', fontsize=7)
    ax.set_ylabel('COCO box AP (%)')
    ax.set_ylim(bottom * 1.1, max(top * 1.1, 1.0))
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
        plot_results(json.load(f), args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
