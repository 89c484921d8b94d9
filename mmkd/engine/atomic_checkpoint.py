"""Atomic checkpoint writes: an interrupted save never replaces the last good checkpoint.

mmengine 0.10.7's ``save_checkpoint`` serialises into memory and then writes the bytes with
``open(filename, 'wb')``: a job killed (or a disk filling up) during that write leaves a
truncated ``epoch_N.pth``, and when the file already existed (a re-run, or ``latest.pth``-style
names) the previous good one is gone. The replacement below, for local files, writes to a
temporary file in the same directory (same file system), ``fsync``s it, and moves it over the
target with ``os.replace`` (atomic on POSIX and Windows), then ``fsync``s the directory. Until the
move, the old file is untouched; after it, the new one is complete. A failure removes the
temporary file and re-raises. Remote back-ends (``s3://``, ``pavi://``, ``file_client_args``) go
to mmengine's own function unchanged.

Installed by ``import mmkd`` on the three names through which mmengine reaches the function:
``mmengine.runner.runner.save_checkpoint`` (``Runner.save_checkpoint``, used by
``CheckpointHook``), ``mmengine.runner.checkpoint.save_checkpoint`` (strategies) and
``mmengine.runner.save_checkpoint`` (``CheckpointHook``'s best-checkpoint path).
``CheckpointHook`` writes ``last_checkpoint`` only after the save returned, so it keeps pointing
to the last good file when a save fails.

One more hole: with ``max_keep_ckpts``, ``CheckpointHook._save_checkpoint_with_step`` deletes the
oldest checkpoint *before* writing the new one, so with ``max_keep_ckpts=1`` a failed save left
no checkpoint at all (and ``last_checkpoint`` pointing to a deleted file). The wrapper below hands
the hook a file back-end whose ``remove``/``rmtree`` are deferred until the save has returned.

``last_checkpoint``, the text file naming the checkpoint ``--resume`` continues from, is written
atomically too. mmengine writes it with the builtin ``open(path, 'w')`` in exactly one place
(``CheckpointHook._save_checkpoint_with_step``), which empties the file first: a kill at that
moment left an empty ``last_checkpoint``. ``import mmkd`` gives the module
``mmengine.hooks.checkpoint_hook`` its own ``open`` (:func:`open_text_atomically`): mode ``'w'``
collects the text and writes it through a temporary file, fsync and ``os.replace`` when the
``with`` block ends without an error; any other mode is the builtin ``open``.

Two leftovers of a kill are handled too: a temporary file left by a killed save is removed by the
next save of the same file name (only when the process that wrote it is gone), and
``last_checkpoint`` is checked when resuming: if it is empty, truncated or names a file that no
longer exists (e.g. written by an mmengine without this module), ``--resume`` falls back to the
newest complete checkpoint in the work directory and says so, instead of failing on ``''``.
"""
import builtins
import glob
import io
import logging
import os
import os.path as osp
import re
from typing import BinaryIO, Callable, Optional

import mmengine.hooks.checkpoint_hook as mmengine_checkpoint_hook
import mmengine.runner as mmengine_runner
import mmengine.runner._flexible_runner as mmengine_flexible_runner
import mmengine.runner.checkpoint as mmengine_checkpoint
import mmengine.runner.runner as mmengine_runner_module
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

#: mmengine's function, for non-local targets
original_save_checkpoint = getattr(mmengine_checkpoint.save_checkpoint, '__wrapped__',
                                   mmengine_checkpoint.save_checkpoint)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: keep its file
    return True


def remove_stale_temporaries(filename: str) -> list:
    """Remove ``.NAME.<pid>.tmp`` files of ``filename`` whose writer process is gone."""
    dirname, base = osp.split(osp.abspath(filename))
    pattern = re.compile(r'^\.' + re.escape(base) + r'\.(\d+)\.tmp$')
    removed = []
    for path in glob.glob(osp.join(glob.escape(dirname), f'.{glob.escape(base)}.*.tmp')):
        match = pattern.match(osp.basename(path))
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def _write_atomically(filename: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``filename``, fsync it, move it over
    ``filename`` with ``os.replace`` and fsync the directory; on any failure remove it."""
    filename = osp.abspath(filename)
    dirname = osp.dirname(filename)
    os.makedirs(dirname, exist_ok=True)
    remove_stale_temporaries(filename)
    tmp = osp.join(dirname, f'.{osp.basename(filename)}.{os.getpid()}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # umask applies
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(dirname)


def atomic_torch_save(obj, filename: str) -> None:
    """``torch.save(obj, filename)`` through a temporary file, fsync and ``os.replace``."""
    _write_atomically(filename, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, filename: str) -> None:
    """Write ``text`` (UTF-8) to ``filename`` through a temporary file, fsync and
    ``os.replace``."""
    _write_atomically(filename, lambda f: f.write(text.encode('utf-8')))


class _AtomicTextFile(io.StringIO):
    """Collects what is written; writes it to the file atomically when the ``with`` block (or
    :meth:`commit`) ends without an error."""

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.filename = filename

    def commit(self) -> None:
        atomic_write_text(self.getvalue(), self.filename)

    def __exit__(self, exc_type, *args):
        if exc_type is None:
            self.commit()
        return super().__exit__(exc_type, *args)


def open_text_atomically(file, mode: str = 'r', *args, **kwargs):
    """``open`` for mmengine's ``CheckpointHook`` module: text mode ``'w'`` is atomic (see the
    module docstring), every other call is the builtin ``open``."""
    if mode == 'w' and isinstance(file, (str, os.PathLike)):
        return _AtomicTextFile(os.fspath(file))
    return builtins.open(file, mode, *args, **kwargs)


def save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
    """mmengine's ``save_checkpoint``, atomic for local files."""
    filename = str(filename)
    if file_client_args is None and not filename.startswith('pavi://') and isinstance(
            get_file_backend(filename, backend_args=backend_args), LocalBackend):
        atomic_torch_save(checkpoint, filename)
    else:
        original_save_checkpoint(checkpoint, filename, file_client_args=file_client_args,
                                 backend_args=backend_args)


save_checkpoint.__wrapped__ = original_save_checkpoint


class _DeferredRemovals:
    """A file back-end whose deletions wait until :meth:`commit`."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: list = []

    def remove(self, path) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path) -> None:
        self.pending.append(('rmtree', path))

    def commit(self) -> None:
        for kind, path in self.pending:
            getattr(self._backend, kind)(path)

    def __getattr__(self, name):
        return getattr(self._backend, name)


_original_save_with_step = getattr(CheckpointHook._save_checkpoint_with_step, '__wrapped__',
                                   CheckpointHook._save_checkpoint_with_step)


def _save_checkpoint_with_step(self, runner, step, meta):
    """mmengine's, with old checkpoints removed only after the new one is written."""
    backend = self.file_backend
    deferred = _DeferredRemovals(backend)
    self.file_backend = deferred
    try:
        _original_save_with_step(self, runner, step, meta)
    finally:
        self.file_backend = backend
    deferred.commit()


_save_checkpoint_with_step.__wrapped__ = _original_save_with_step


#: mmengine's function, used when ``last_checkpoint`` is sound
original_find_latest_checkpoint = getattr(mmengine_checkpoint.find_latest_checkpoint,
                                          '__wrapped__', mmengine_checkpoint.find_latest_checkpoint)

_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def newest_checkpoint_in(path: str) -> Optional[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` in ``path`` with the largest N (epochs before iters
    never mix in one run), or None."""
    best = None
    for name in os.listdir(path) if osp.isdir(path) else ():
        match = _CHECKPOINT_NAME.match(name)
        if match and (best is None or int(match.group(2)) > best[0]):
            best = (int(match.group(2)), osp.join(path, name))
    return best[1] if best else None


def find_latest_checkpoint(path: str) -> Optional[str]:
    """mmengine's ``find_latest_checkpoint``, falling back to the newest ``epoch_N``/``iter_N``
    file when ``last_checkpoint`` is empty or names a local file that does not exist."""
    last_saved = original_find_latest_checkpoint(path)
    if last_saved is None:
        return None
    if last_saved and ('://' in last_saved or osp.isfile(last_saved) or osp.isdir(last_saved)):
        return last_saved
    fallback = newest_checkpoint_in(path)
    print_log(
        f'{osp.join(path, "last_checkpoint")} names {last_saved!r}, which does not exist (the '
        f'file was cut short by a kill, or the checkpoint was removed); resuming from the newest '
        f'checkpoint in the work directory instead: {fallback}.', logger='current',
        level=logging.WARNING)
    return fallback


find_latest_checkpoint.__wrapped__ = original_find_latest_checkpoint


def install() -> None:
    """Make mmengine's checkpoint saving atomic and its resume robust (idempotent)."""
    for module in (mmengine_runner_module, mmengine_checkpoint, mmengine_runner):
        module.save_checkpoint = save_checkpoint
        module.find_latest_checkpoint = find_latest_checkpoint
    mmengine_flexible_runner.find_latest_checkpoint = find_latest_checkpoint
    CheckpointHook._save_checkpoint_with_step = _save_checkpoint_with_step
    mmengine_checkpoint_hook.open = open_text_atomically  # last_checkpoint (module docstring)


install()
