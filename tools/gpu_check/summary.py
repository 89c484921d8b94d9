"""The results of ``tools/gpu_check.sh``: one JSON record per check, and the table printed last.

    python tools/gpu_check/summary.py record DIR CHECK STATUS [RESULT] [--it-s X] [--order N]
    python tools/gpu_check/summary.py benchmark BENCH_JSON DIR [--order N]
    python tools/gpu_check/summary.py table DIR

A record is ``DIR/<order>_<check>.json`` holding ``check``, ``status`` (one of ``STATUSES``),
``result`` (one line of text), optionally ``it_s`` (training iterations per second) and
``compare_to`` (the check whose it/s this one is compared with). ``table`` prints every record in
order, one row each, and exits with 1 when a check failed or timed out, else 0.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional

#: ``ok``: passed; ``FAIL``: ran and failed; ``timeout``: stopped by the time budget; ``skipped``:
#: not run (the result says why); ``info``: a fact about the machine, not a check
STATUSES = ('ok', 'FAIL', 'timeout', 'skipped', 'info')
FAILED = ('FAIL', 'timeout')
#: the distillation-cost target of ``tools/analysis_tools/benchmark_distill.py``: c / (a + b)
BENCH_RATIO_TARGET = 1.10


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9]+', '-', text).strip('-').lower()


def write_record(results_dir: str, record: Dict, order: int) -> str:
    """Write one check's record; return its path."""
    if record.get('status') not in STATUSES:
        raise ValueError(f'status must be one of {STATUSES}, got {record.get("status")!r}')
    if not record.get('check'):
        raise ValueError('a record needs a non-empty `check` name')
    os.makedirs(results_dir, exist_ok=True)
    path = osp.join(results_dir, f'{order:03d}_{_slug(record["check"])}.json')
    with open(path, 'w') as f:
        json.dump(record, f, indent=1)
    return path


def read_records(results_dir: str) -> List[Dict]:
    """Every record in ``results_dir``, in the order they were numbered."""
    if not osp.isdir(results_dir):
        return []
    records = []
    for name in sorted(os.listdir(results_dir)):
        if re.fullmatch(r'\d{3}_.*\.json', name):
            with open(osp.join(results_dir, name)) as f:
                records.append(json.load(f))
    return records


def benchmark_records(rows: List[Dict]) -> List[Dict]:
    """One record per method of ``benchmark_distill.py --json`` output: its cost ratio."""
    records = []
    for row in rows:
        ratio = row['ratio']
        status = 'ok' if ratio <= BENCH_RATIO_TARGET else 'FAIL'
        records.append(dict(
            check=f'benchmark {row["method"]}', status=status,
            result=(f'c/(a+b) = {ratio:.3f} (target <= {BENCH_RATIO_TARGET:.2f}); '
                    f'student step {row["a"]:.1f} ms, teacher {row["b"]:.1f} ms, '
                    f'distillation step {row["c"]:.1f} ms')))
    return records


def _it_s(value: Optional[float]) -> str:
    return f'{value:.2f}' if isinstance(value, (int, float)) and math.isfinite(value) else ''


def build_table(records: List[Dict]) -> str:
    """The summary: one row per record, comparisons filled in, and a last line that says it all."""
    by_check = {r['check']: r for r in records}
    rows = []
    for r in records:
        result = r.get('result', '')
        other = by_check.get(r.get('compare_to', ''))
        if other and r.get('it_s') and other.get('it_s'):
            result = (f'{result}; {other["check"]} / this = '
                      f'{other["it_s"] / r["it_s"]:.2f}x it/s').lstrip('; ')
        rows.append((r['check'], r['status'], _it_s(r.get('it_s')), result))
    head = ('check', 'status', 'it/s', 'result')
    widths = [max(len(x) for x in col) for col in zip(head, *rows)] if rows else [0] * 4
    widths[-1] = 0  # the last column is not padded

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'

    out = [line(head), '|' + '|'.join('-' * (w + 2) for w in widths[:-1]) + '|---|']
    out += [line(r) for r in rows]
    failed = [r['check'] for r in records if r['status'] in FAILED]
    skipped = [r['check'] for r in records if r['status'] == 'skipped']
    if not records:
        out.append('no checks were recorded')
    elif failed:
        out.append(f'FAILED: {len(failed)} check(s): {", ".join(failed)}')
    else:
        ran = sum(r['status'] == 'ok' for r in records)
        out.append(f'passed: {ran} check(s)' +
                   (f'; skipped: {len(skipped)} ({", ".join(skipped)})' if skipped else ''))
    return '\n'.join(out)


def exit_code(records: List[Dict]) -> int:
    """1 when a check failed or timed out (or none was recorded), else 0."""
    return 1 if not records or any(r['status'] in FAILED for r in records) else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record', help='write one check\'s record')
    rec.add_argument('results_dir')
    rec.add_argument('check')
    rec.add_argument('status', choices=STATUSES)
    rec.add_argument('result', nargs='?', default='')
    rec.add_argument('--it-s', type=float)
    rec.add_argument('--order', type=int, default=0)
    bench = sub.add_parser('benchmark', help='records from benchmark_distill.py --json')
    bench.add_argument('bench_json')
    bench.add_argument('results_dir')
    bench.add_argument('--order', type=int, default=0)
    table = sub.add_parser('table', help='print the summary table')
    table.add_argument('results_dir')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == 'record':
        record = dict(check=args.check, status=args.status, result=args.result)
        if args.it_s is not None:
            record['it_s'] = args.it_s
        write_record(args.results_dir, record, args.order)
    elif args.command == 'benchmark':
        with open(args.bench_json) as f:
            rows = json.load(f)
        for i, record in enumerate(benchmark_records(rows)):
            write_record(args.results_dir, record, args.order + i)
    else:
        records = read_records(args.results_dir)
        print(build_table(records))
        return exit_code(records)
    return 0


if __name__ == '__main__':
    sys.exit(main())
