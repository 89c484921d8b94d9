"""PyTorch DDP on machines without CUDA (gloo), which mmengine 0.10.7 does not handle.

Measured with this stack on a CPU-only machine: ``init_dist`` calls ``torch.cuda.set_device``
unconditionally ("no attribute '_cuda_setDevice'"), and the default wrapper passes
``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules.

CPU ranks report fatal signals: the launcher's output holds the C++ and Python stacks of every
thread of a rank that dies of one. That report is how the occasional SIGABRT of a 2-rank CPU run
("terminate called without an active exception") was traced to interpreter exit with a busy gloo
worker thread; ``distributed_exit.py`` has the cause and the fix.
"""
import faulthandler

import torch
from mmengine.config import Config


def _set_device_without_cuda(device) -> None:
    """``torch.cuda.set_device`` on a machine without CUDA: nothing to select."""


def report_fatal_signals() -> None:
    """On a fatal signal (SIGABRT from ``std::terminate``, SIGSEGV, ...) print the C++ stack of
    every thread (torch's handler) and then the Python stack of every thread (``faulthandler``,
    which torch's handler calls next) before the process dies with that signal as before."""
    if not faulthandler.is_enabled():
        faulthandler.enable()
    print_cpp_stacks = getattr(torch._C, '_set_print_stack_traces_on_fatal_signal', None)
    if print_cpp_stacks is not None:
        print_cpp_stacks(True)


def prepare_cpu_distributed(cfg: Config) -> Config:
    """Make ``cfg`` run under a distributed launcher when CUDA is absent; no-op otherwise."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return cfg
    report_fatal_signals()
    torch.cuda.set_device = _set_device_without_cuda
    cfg.setdefault('env_cfg', dict())
    cfg.env_cfg.setdefault('dist_cfg', dict())
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or dict())
    wrapper['device_ids'] = None  # CPU modules take no device ids
    cfg.model_wrapper_cfg = wrapper
    return cfg
