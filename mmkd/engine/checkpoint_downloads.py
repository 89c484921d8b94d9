"""A failed checkpoint download names the URL, where the file is expected, and what to set.

Without this, a machine without internet fails the first time a config names a remote
checkpoint (``torchvision://resnet18`` in a backbone's ``init_cfg``, a zoo URL in
``teacher_ckpt``) with urllib's bare ``URLError: <urlopen error [Errno -3] Temporary failure in
name resolution>``, which names neither the file nor the model. Every remote scheme of mmengine
(``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``) downloads through
``mmengine.runner.checkpoint.load_from_http``; ``import mmkd`` wraps it (the module-level name
the other schemes call, and its two entries in ``CheckpointLoader``) so that a failed download
raises :class:`CheckpointDownloadError` with the URL and the file torch's cache would read.
Which model and config key asked for the file is added where that is known: the teacher
loader names ``model.teacher_ckpt``, and ``tools/train.py`` names the module whose ``init_cfg``
asked (:func:`explain_download_failure`).
"""
import http.client
import os.path as osp
from typing import List, Optional
from urllib.parse import urlparse

import mmengine.runner.checkpoint as mmengine_checkpoint
import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn


class CheckpointDownloadError(OSError):
    """A remote checkpoint could not be downloaded (no internet, proxy, server error)."""

    def __init__(self, url: str, reason: str, context: str = '') -> None:
        self.url, self.reason, self.context = url, reason, context
        super().__init__(
            f'Could not download the checkpoint {url} ({reason}).{context} If this machine has '
            f'no internet access, download the file elsewhere and put it at {cache_file(url)} '
            '(torch\'s download cache, which is read before any download), or give the config '
            'a local path instead of the URL.')


def cache_file(url: str) -> str:
    """Where torch's hub cache keeps (and first looks for) the download of ``url``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(url).path))


#: mmengine's function
original_load_from_http = getattr(mmengine_checkpoint.load_from_http, '__wrapped__',
                                  mmengine_checkpoint.load_from_http)


def load_from_http(filename, *args, **kwargs):
    """mmengine's ``load_from_http``; a failed download raises :class:`CheckpointDownloadError`."""
    try:
        return original_load_from_http(filename, *args, **kwargs)
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, refused, ...
        if isinstance(e, CheckpointDownloadError):
            raise
        raise CheckpointDownloadError(filename, f'{type(e).__name__}: {e}') from e


load_from_http.__wrapped__ = original_load_from_http


def remote_url(checkpoint) -> Optional[str]:
    """The URL mmengine downloads for a checkpoint name, or None for a local path."""
    if not isinstance(checkpoint, str):
        return None
    if checkpoint.startswith(('http://', 'https://')):
        return checkpoint
    for prefixes, table in ((('torchvision://', 'modelzoo://'),
                             mmengine_checkpoint.get_torchvision_models),
                            (('open-mmlab://', 'openmmlab://'),
                             mmengine_checkpoint.get_external_models),
                            (('mmcls://', ), mmengine_checkpoint.get_mmcls_models)):
        for prefix in prefixes:
            if checkpoint.startswith(prefix):
                return table().get(checkpoint[len(prefix):])
    return None


def _init_cfg_checkpoints(init_cfg) -> List[str]:
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return [c['checkpoint'] for c in cfgs if isinstance(c, dict) and c.get('checkpoint')]


def _who(path: str) -> str:
    if path.startswith('architecture.'):
        return f'the student\'s {path[len("architecture."):]}'
    if path.startswith('teacher.'):
        return f'the teacher\'s {path[len("teacher."):]}'
    return f'the model\'s {path}'


def explain_download_failure(model: nn.Module, error: CheckpointDownloadError
                             ) -> CheckpointDownloadError:
    """``error`` with the modules of ``model`` (a runner's model: a detector or a
    ``DetectionDistill``, whose teacher is searched too) whose ``init_cfg`` asked for its URL,
    and the config keys that fix it."""
    model = getattr(model, 'module', model)  # DDP wrapper
    named = list(model.named_modules())
    teacher = getattr(model, 'teacher', None)
    if isinstance(teacher, nn.Module) and not any(m is teacher for _, m in named):
        named += [(f'teacher.{n}' if n else 'teacher', m) for n, m in teacher.named_modules()]
    found = [(path, module, checkpoint) for path, module in named if path
             for checkpoint in _init_cfg_checkpoints(getattr(module, 'init_cfg', None))
             if remote_url(checkpoint) == error.url]
    if not found:
        return error
    what = '; '.join(f'{_who(path)} ({type(module).__name__}, init_cfg checkpoint={ckpt!r})'
                     for path, module, ckpt in found)
    name = osp.basename(urlparse(error.url).path)
    fix = ' or '.join(f'--cfg-options model.{path}.init_cfg=None (train it from scratch) or '
                      f'model.{path}.init_cfg.checkpoint=/local/path/{name}'
                      for path, _, _ in found)
    return CheckpointDownloadError(error.url, error.reason,
                                   f' It is the pretrained weights of {what}. Fix: {fix}.')


def install() -> None:
    """Route every remote checkpoint download through :func:`load_from_http` (idempotent)."""
    mmengine_checkpoint.load_from_http = load_from_http
    for prefix in ('http://', 'https://'):
        CheckpointLoader._schemes[prefix] = load_from_http


install()
