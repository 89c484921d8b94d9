"""PyTorch DDP on machines without CUDA (gloo), which mmengine 0.10.7 does not handle.

Measured with this stack on a CPU-only machine: ``init_dist`` calls ``torch.cuda.set_device``
unconditionally ("no attribute '_cuda_setDevice'"), and the default wrapper passes
``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules.
"""
import torch
from mmengine.config import Config


def _set_device_without_cuda(device) -> None:
    """``torch.cuda.set_device`` on a machine without CUDA: nothing to select."""


def prepare_cpu_distributed(cfg: Config) -> Config:
    """Make ``cfg`` run under a distributed launcher when CUDA is absent; no-op otherwise."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return cfg
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
