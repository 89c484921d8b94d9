"""Pictures of distillation: fixed-size figures, the results bar chart.

The tools ``tools/analysis_tools/visualize_distill.py`` (features, masks, regions of one image)
and ``tools/analysis_tools/plot_losses.py`` (training curves) build on :mod:`.figures`.
"""
from .figures import DPI, PANEL_IN, figure_px, panel_figure, save_figure  # noqa: F401
from .results_chart import plot_results, results_chart_px  # noqa: F401
