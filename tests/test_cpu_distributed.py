"""CPU DDP set-up (mmkd/engine/cpu_distributed.py): the config it writes, and a rank that dies of
a fatal signal leaving the C++ and Python stacks of its threads in the launcher's output."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

from mmkd.engine import prepare_cpu_distributed
from _toy import REPO, run_failure_output

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only behaviour')


def test_cpu_launch_uses_gloo_and_ddp_without_device_ids():
    cfg = prepare_cpu_distributed(Config(dict(
        launcher='pytorch', find_unused_parameters=True,
        model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=[0],
                               broadcast_buffers=True))))
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         broadcast_buffers=True, find_unused_parameters=True,
                                         device_ids=None)
    single = prepare_cpu_distributed(Config(dict(launcher='none')))
    assert 'model_wrapper_cfg' not in single and 'env_cfg' not in single


def test_a_rank_killed_by_sigabrt_prints_every_threads_stacks():
    """What std::terminate does to a rank: SIGABRT. The process still dies of it."""
    script = textwrap.dedent('''
        import faulthandler, os, threading, time
        from mmengine.config import Config
        from mmkd.engine import prepare_cpu_distributed
        prepare_cpu_distributed(Config(dict(launcher='none')))
        print('single process, faulthandler:', faulthandler.is_enabled(), flush=True)
        prepare_cpu_distributed(Config(dict(launcher='pytorch')))
        threading.Thread(target=time.sleep, args=(30, ), name='sleeper', daemon=True).start()
        os.abort()  # the line the Python stack must show
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONFAULTHANDLER'}
    proc = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                          text=True, env=dict(env, OMP_NUM_THREADS='1'), timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == -signal.SIGABRT, out[-3000:]
    assert 'single process, faulthandler: False' in out
    # torch's handler: one C++ stack per thread (main thread and the sleeper at least)
    assert out.count('SIGABRT(6), PID: ') >= 2, out[-3000:]
    assert 'abort' in out.split('SIGABRT(6), PID: ')[1]
    # faulthandler: the Python stack of every thread; the aborting line in the current one's
    assert 'Fatal Python error: Aborted' in out
    others, current = out.split('Fatal Python error: Aborted')[1].split('Current thread')
    assert 'in _bootstrap' in others  # the sleeper
    assert 'line 9 in <module>' in current, out[-3000:]
    # what the DDP tests show when a rank dies: the report, from its start
    shown = run_failure_output('launcher lines\n' * 1000 + out)
    assert shown.startswith('SIGABRT(6), PID: ') and 'line 9 in <module>' in shown
    assert run_failure_output('x' * 5000 + 'Traceback: KeyError') == \
        'x' * (4000 - 19) + 'Traceback: KeyError'
