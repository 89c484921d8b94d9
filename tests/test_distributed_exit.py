"""Leaving a distributed run (mmkd/engine/distributed_exit.py): the wait for gloo's worker threads
and a 2-rank gloo run with a DDP module that ends through it."""
import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from mmkd.engine.distributed_exit import (GLOO_WORKER_THREAD_NAME, shut_down_distributed,
                                          wait_for_idle_gloo_workers)
from _toy import REPO, free_port, run_failure_output

linux_only = pytest.mark.skipif(not os.path.isdir('/proc/self/task'),
                                reason='thread states are read from /proc')


def _name_this_thread(name: str) -> None:
    """prctl(PR_SET_NAME): the name /proc/self/task/<tid>/comm shows, as gloo names its threads."""
    ctypes.CDLL(None).prctl(15, name.encode())


def _worker(busy_seconds: float, release: threading.Event, named: threading.Semaphore) -> None:
    """A stand-in for a gloo worker: runs for ``busy_seconds`` (as one still freeing tensors) or
    until released, then sleeps on a condition (as an idle one)."""
    _name_this_thread(GLOO_WORKER_THREAD_NAME)
    named.release()
    end = time.monotonic() + busy_seconds
    while time.monotonic() < end and not release.is_set():
        sum(range(1000))
    release.wait()


@linux_only
def test_wait_returns_only_once_the_workers_stopped_running():
    release, named = threading.Event(), threading.Semaphore(0)
    workers = [threading.Thread(target=_worker, args=(busy, release, named))
               for busy in (0.2, 0.6)]
    start = time.monotonic()
    for w in workers:
        w.start()
    try:
        for _ in workers:
            assert named.acquire(timeout=10)
        assert wait_for_idle_gloo_workers(interval=0.02, timeout=10.0)
        waited = time.monotonic() - start
    finally:
        release.set()
        for w in workers:
            w.join()
    assert 0.6 <= waited < 5.0, waited


@linux_only
def test_wait_gives_up_after_its_timeout_while_a_worker_keeps_running():
    release, named = threading.Event(), threading.Semaphore(0)
    worker = threading.Thread(target=_worker, args=(30.0, release, named), daemon=True)
    worker.start()
    assert named.acquire(timeout=10)
    start = time.monotonic()
    assert not wait_for_idle_gloo_workers(interval=0.02, timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 3.0
    release.set()


def test_shut_down_is_a_no_op_outside_a_distributed_run():
    assert not torch.distributed.is_initialized()
    start = time.monotonic()
    shut_down_distributed()
    assert time.monotonic() - start < 0.5


@linux_only
@pytest.mark.timeout(300)
def test_two_gloo_ranks_with_ddp_end_without_a_busy_worker(tmp_path):
    """What tools/train.py leaves behind: a DDP module (which keeps gloo's threads alive after
    ``destroy_process_group``) and collectives on Python tensors, then the exit."""
    script = textwrap.dedent('''
        import torch, torch.distributed as dist
        from mmkd.engine.distributed_exit import _gloo_worker_threads, shut_down_distributed
        dist.init_process_group('gloo')
        ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 4))
        ddp(torch.randn(2, 4)).sum().backward()
        for _ in range(20):
            dist.all_reduce(torch.ones(1000))
        workers, rank = len(_gloo_worker_threads()), dist.get_rank()
        shut_down_distributed()
        print(f'rank {rank}: {workers} gloo workers, initialized after: '
              f'{dist.is_initialized()}', flush=True)
    ''')
    path = tmp_path / 'two_ranks.py'
    path.write_text(script)
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', str(free_port()), str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, run_failure_output(out)
    for rank in (0, 1):
        assert f'rank {rank}: 2 gloo workers, initialized after: False' in out, out[-3000:]
