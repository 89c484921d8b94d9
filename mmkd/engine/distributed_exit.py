"""Leave a distributed run without the gloo abort at interpreter exit.

A gloo collective is run by one of the process group's worker threads ("pt_gloo_runloop"). When
the collective is done, that thread drops its work, and with it the work's tensors; a tensor whose
Python object the main thread has already released needs the GIL to free that object. If the main
thread has reached interpreter shutdown by then, Python ends the waiting thread with
``pthread_exit``, the unwind meets a ``noexcept`` frame and the rank dies of ``std::terminate``:
"terminate called without an active exception", SIGABRT, with ``ProcessGroupGloo::runLoop ->
c10::TensorImpl::decref_pyobject -> pthread_exit`` on the aborting thread's C++ stack. Seen once
here, the rank hung instead: the main thread in ``~ProcessGroupGloo`` (freed at shutdown) waiting
for the work mutex, the worker stuck in that abort's signal handler.

torch's remedy is ``destroy_process_group()`` before exit (pytorch/pytorch#190489; #157193 and
#179291 would do it at exit and are not merged): it destroys the group, whose destructor joins the
worker threads. Measured with torch 2.13: once a ``DistributedDataParallel`` module has been built,
the gloo threads outlive ``destroy_process_group()`` (something in C++ still holds the group, also
after the module is freed and ``gc.collect()``), so the race stays. :func:`shut_down_distributed`
therefore also waits, with the GIL released, until no worker thread is still busy dropping a work.
"""
import os
import time
import warnings

import torch.distributed as dist

GLOO_WORKER_THREAD_NAME = 'pt_gloo_runloop'


def _gloo_worker_threads() -> list:
    """Thread ids of this process's gloo worker threads (Linux ``/proc``; empty elsewhere)."""
    try:
        tids = os.listdir('/proc/self/task')
    except OSError:
        return []
    workers = []
    for tid in tids:
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                if f.read().strip() == GLOO_WORKER_THREAD_NAME:
                    workers.append(tid)
        except OSError:  # the thread ended meanwhile
            continue
    return workers


def _thread_activity(tid: str):
    """(state, context switches) of a thread, or None once it has ended."""
    try:
        with open(f'/proc/self/task/{tid}/status') as f:
            fields = dict(line.split(':', 1) for line in f if ':' in line)
    except OSError:
        return None
    switches = (int(fields['voluntary_ctxt_switches']) +
                int(fields['nonvoluntary_ctxt_switches']))
    return fields['State'].split()[0], switches


def wait_for_idle_gloo_workers(interval: float = 0.02, timeout: float = 10.0) -> bool:
    """Sleep (the GIL released) until every gloo worker thread is asleep and did not run during one
    whole ``interval``: a thread still waiting for the GIL to free a tensor would have taken it and
    run meanwhile. Returns whether that was reached within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    before = None
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = {tid: _thread_activity(tid) for tid in _gloo_worker_threads()}
        now = {tid: act for tid, act in now.items() if act is not None}
        asleep = all(state == 'S' for state, _ in now.values())
        if asleep and now == before:
            return True
        before = now if asleep else None
    return False


def shut_down_distributed() -> None:
    """Destroy the default process group and let gloo's worker threads finish, so that the
    interpreter's shutdown cannot abort the rank. A no-op outside a distributed run."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.destroy_process_group()
    if not wait_for_idle_gloo_workers():
        warnings.warn('gloo worker threads were still running 10 s after the process group was '
                      'destroyed; exiting anyway (the rank may die of SIGABRT at exit, after its '
                      'work is saved).')
