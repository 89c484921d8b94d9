"""Moved to ``tools/model_converters/export_student.py``; this path runs it (same arguments)."""
import os.path as osp
import runpy

if __name__ == '__main__':
    here = osp.dirname(osp.abspath(__file__))
    runpy.run_path(osp.join(here, 'model_converters', 'export_student.py'), run_name='__main__')
