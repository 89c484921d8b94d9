"""Is distillation working? One Markdown report: a distilled run against its baseline.

    python tools/analysis_tools/analyze_distill.py DISTILLED_WORK_DIR BASELINE_WORK_DIR
        [--out report.md]

From what mmengine and mmkd already write into the two work dirs (JSON logs, test results of
``tools/test.py ... --work-dir WORK_DIR``, the dumped config, mmkd's teacher_check.json and
loss_balance.json): AP, AP50, AP75, AP small/medium/large and per-class AP side by side with
deltas, the curves of every distillation term against the detection losses, the gradient norm
and how often it was above the clip threshold, the teacher's mAP. The pictures are written as
PNG files next to the report. A missing number is named with the setting that produces it.
"""
import argparse
import os.path as osp

import mmkd  # noqa: F401  (registers the toy data set etc. for the dumped configs)
from mmkd.visualization.report import build_report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('distilled', help='work dir of the distillation run')
    parser.add_argument('baseline', help='work dir of the student trained alone')
    parser.add_argument('--out', help='the report (default: DISTILLED/distill_report.md)')
    args = parser.parse_args(argv)
    out = args.out or osp.join(args.distilled, 'distill_report.md')
    numbers = build_report(args.distilled, args.baseline, out)
    print('wrote ' + ', '.join(numbers['files']))
    return numbers


if __name__ == '__main__':
    main()
