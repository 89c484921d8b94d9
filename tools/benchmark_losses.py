"""Moved to ``tools/analysis_tools/benchmark_losses.py``; this path runs it (same arguments)."""
import os.path as osp
import runpy

if __name__ == '__main__':
    here = osp.dirname(osp.abspath(__file__))
    runpy.run_path(osp.join(here, 'analysis_tools', 'benchmark_losses.py'), run_name='__main__')
