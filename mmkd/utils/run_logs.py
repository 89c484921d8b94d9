"""What mmengine writes into a work directory, read back: scalars, metrics, config, records.

A training run writes ``<work_dir>/<timestamp>/vis_data/<timestamp>.json`` (and the same lines in
``scalars.json``): one JSON object per line, the training lines with ``iter``/``step`` and the
loss, ``lr``, ``grad_norm`` values as logged (mmengine's running mean over
``log_processor.window_size`` iterations for keys with ``loss``/``time``/``grad_norm``), the
validation lines with the metrics (``coco/bbox_mAP``...) and ``step`` = the epoch (epoch-based
runs) or iteration. ``tools/test.py ... --work-dir`` writes its metrics to
``<work_dir>/<timestamp>/<timestamp>.json``. The config is dumped as
``<timestamp>/vis_data/config.py`` and ``<work_dir>/<config name>.py``. mmkd's hooks add
``teacher_check.json`` and ``loss_balance.json`` to ``<work_dir>/<timestamp>/``.
"""
import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

#: keys of a training line that are bookkeeping, not logged values
BOOKKEEPING = ('epoch', 'iter', 'step')
#: the line ``mmkd.TeacherCheckHook`` logs: "teacher bbox_mAP = 0.4120 (coco/bbox_mAP on ..."
TEACHER_LINE = re.compile(r'teacher (\S+) = ([-\d.]+) \(')


def json_lines(path: str) -> List[dict]:
    """The JSON objects of a log file, one a line; blank lines and a line cut by an
    interrupted run are skipped."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
    return records


def is_metric(key: str) -> bool:
    """An evaluator's metric as mmengine logs it: ``<prefix>/<name>`` (``coco/bbox_mAP``)."""
    return '/' in key


class RunLogs:
    """The logs of one work directory, resumed runs merged in time order.

    Attributes:
        work_dir (str): the directory.
        log_dirs (list[str]): its ``<timestamp>`` directories, oldest first.
        train (dict[int, dict]): iteration -> the training line logged at it (a later run's
            line replaces an earlier one at the same iteration, as after a resume).
        val (list[dict]): validation lines, in order, each with ``step``.
        test (list[dict]): the metric lines of ``tools/test.py`` runs into this directory.
    """

    def __init__(self, work_dir: str) -> None:
        if not osp.isdir(work_dir):
            raise FileNotFoundError(f'work dir {work_dir!r} does not exist')
        self.work_dir = work_dir
        self.log_dirs = sorted(d for d in glob.glob(osp.join(work_dir, '*'))
                               if osp.isdir(d) and osp.basename(d)[:8].isdigit())
        self.train: Dict[int, dict] = {}
        self.val: List[dict] = []
        self.test: List[dict] = []
        for log_dir in self.log_dirs:
            stamp = osp.basename(log_dir)
            vis = osp.join(log_dir, 'vis_data')
            for name in (f'{stamp}.json', 'scalars.json'):
                if osp.isfile(osp.join(vis, name)):
                    self._add_scalars(json_lines(osp.join(vis, name)))
                    break
            test_file = osp.join(log_dir, f'{stamp}.json')
            if osp.isfile(test_file):
                self.test += [r for r in json_lines(test_file) if any(map(is_metric, r))]
        if not self.train and not self.val and not self.test:
            raise FileNotFoundError(
                f'no mmengine logs under {work_dir!r} (expected <timestamp>/vis_data/'
                '<timestamp>.json from training or <timestamp>/<timestamp>.json from testing)')

    def _add_scalars(self, records: List[dict]) -> None:
        for rec in records:
            # a training line has its iteration and the losses; a validation line the metrics
            # (none when nothing was detected) and its step
            if 'iter' in rec and not any(map(is_metric, rec)):
                self.train[int(rec['iter'])] = rec
            else:
                self.val.append(rec)

    @property
    def name(self) -> str:
        return osp.basename(osp.normpath(self.work_dir))

    def curve(self, key: str) -> Tuple[List[int], List[float]]:
        """(iterations, values) of a training key, where logged."""
        its = [i for i in sorted(self.train) if isinstance(self.train[i].get(key), (int, float))]
        return its, [float(self.train[i][key]) for i in its]

    def train_keys(self) -> List[str]:
        keys: List[str] = []
        for i in sorted(self.train):
            keys += [k for k in self.train[i] if k not in keys and k not in BOOKKEEPING]
        return keys

    def final_metrics(self) -> Tuple[Dict[str, float], str]:
        """The metrics of the latest test run, else of the last validation; and where from."""
        if self.test:
            return _metrics(self.test[-1]), f'the last tools/test.py run into {self.work_dir}'
        if self.val:
            last = self.val[-1]
            where = f'the last validation (step {last.get("step", "?")})'
            metrics = _metrics(last)
            return metrics, where if metrics else f'{where}: no metrics (nothing detected?)'
        return {}, 'no validation or test in the logs'

    def config(self):
        """The dumped config (mmengine ``Config``) of the latest run, or None."""
        from mmengine.config import Config
        candidates = [osp.join(d, 'vis_data', 'config.py') for d in reversed(self.log_dirs)]
        candidates += sorted(glob.glob(osp.join(self.work_dir, '*.py')))
        for path in candidates:
            if osp.isfile(path):
                return Config.fromfile(path)
        return None

    def teacher_map(self) -> Optional[dict]:
        """The teacher check's result: its ``teacher_check.json``, else its log line."""
        record = self.record('teacher_check.json')
        if record is not None:
            return record
        for log_dir in reversed(self.log_dirs):
            for log in glob.glob(osp.join(log_dir, '*.log')):
                with open(log, errors='replace') as f:
                    found = TEACHER_LINE.findall(f.read())
                if found:
                    return dict(metric_key=found[-1][0], map=float(found[-1][1]))
        return None

    def record(self, name: str) -> Optional[dict]:
        """The latest ``<timestamp>/<name>`` JSON record (e.g. ``teacher_check.json``)."""
        for log_dir in reversed(self.log_dirs):
            path = osp.join(log_dir, name)
            if osp.isfile(path):
                with open(path) as f:
                    return json.load(f)
        return None


def _metrics(record: dict) -> Dict[str, float]:
    return {k: float(v) for k, v in record.items() if is_metric(k) and isinstance(v, (int, float))}
