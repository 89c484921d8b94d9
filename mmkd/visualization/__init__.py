"""Pictures of distillation: fixed-size figures, one picture per method, the results bar chart.

``tools/analysis_tools/visualize_distill.py`` (what each method sees on one image) is a thin
command on :mod:`.distill_scene` and :mod:`.pictures`; ``tools/analysis_tools/plot_losses.py``
(training curves) and :mod:`.results_chart` build on :mod:`.figures`.
"""
from .figures import DPI, PANEL_IN, figure_px, panel_figure, save_figure  # noqa: F401
from .results_chart import plot_results, results_chart_px  # noqa: F401
