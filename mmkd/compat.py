"""Narrow shims that make mmrazor 1.0.0 and mmengine 0.10.7 work on today's torch.

Imported first by :mod:`mmkd`. Each shim is visible (named here, tested in
``tests/test_compat.py``; the third in ``tests/test_startup_refusals.py``) and touches nothing in
site-packages.

1. ``mmrazor.structures.quantization.backend_config`` builds torch.ao backend configs at import
   time from names that torch >= 2.0 removed, so ``import mmrazor.engine`` (and with it every
   mmrazor registry build) fails with "`torch>=1.13` is not installed properly" (mmrazor #615,
   #632). We put a stand-in module in ``sys.modules`` before mmrazor is imported. Distillation
   never touches it; any use of mmrazor quantization raises :class:`MMRazorQuantizationUnavailable`
   naming the torch version.
2. mmengine 0.10.7 resumes with ``torch.load`` under torch's ``weights_only=True`` default
   (torch >= 2.6), which refuses the few non-tensor types mmengine writes (``HistoryBuffer``,
   numpy scalars/arrays, ``getattr(HistoryBuffer, 'mean')``). We allow-list exactly those with
   ``torch.serialization.add_safe_globals`` (``getattr`` through a stand-in that only gives out
   HistoryBuffer's statistics methods); ``weights_only`` stays on, so any other pickled object
   in a checkpoint is still refused.
3. mmengine resolves ``torchvision://NAME`` checkpoints (the ImageNet weights of the COCO
   students' backbones, e.g. ``torchvision://resnet18``) with ``get_torchvision_models``, which
   imports torchvision, a package nothing else here needs; without it every such config fails
   with "No module named 'torchvision'". When torchvision is not installed, the names are looked
   up in the URL table mmengine ships (``mmengine/hub/torchvision_0.12.json``, the table its own
   function starts from), so the same files are downloaded.
"""
import importlib.util
import os.path as osp
import pickle
import sys
import types
from typing import Any, List

import torch

_BACKEND_CONFIG = 'mmrazor.structures.quantization.backend_config'


class MMRazorQuantizationUnavailable(RuntimeError):
    """Raised when mmrazor quantization is used: it does not work on this torch."""


def _quantization_error(name: str) -> MMRazorQuantizationUnavailable:
    return MMRazorQuantizationUnavailable(
        f'mmrazor quantization ({name}) is not available with torch {torch.__version__}: '
        'mmrazor 1.0.0 builds its backend configs from torch.ao names that torch >= 2.0 '
        'removed (mmrazor issues #615, #632). mmkd replaced that module so that mmrazor '
        'distillation imports; use torch < 2.0 with mmrazor for quantization.')


class _UnavailableBackendConfigs(dict):
    """Stands in for ``BackendConfigs``: every lookup raises a clear error."""

    def __getitem__(self, key: Any) -> Any:
        raise _quantization_error(f'BackendConfigs[{key!r}]')

    def get(self, key: Any, default: Any = None) -> Any:
        raise _quantization_error(f'BackendConfigs.get({key!r})')


def _unavailable(name: str):

    def fn(*args, **kwargs):
        raise _quantization_error(name)

    fn.__name__ = name
    return fn


_BACKEND_FUNCS = [
    f'get_{backend}_backend_config{suffix}'
    for backend in ('academic', 'native', 'openvino', 'tensorrt') for suffix in ('', '_dict')
]


def install_mmrazor_quantization_stub() -> bool:
    """Put the stand-in backend-config module in place if mmrazor's own fails on this torch.

    Returns True when the stand-in is in use.
    """
    if _BACKEND_CONFIG in sys.modules:
        return getattr(sys.modules[_BACKEND_CONFIG], '__mmkd_stub__', False)
    try:
        from torch.ao.quantization.fuser_method_mappings import reverse2  # noqa: F401
        from torch.ao.quantization.qconfig_mapping import \
            _FIXED_QPARAMS_OP_TO_OBSERVER  # noqa: F401
        return False  # an old torch where mmrazor's module imports as it is
    except ImportError:
        pass
    stub = types.ModuleType(_BACKEND_CONFIG)
    stub.__doc__ = 'mmkd stand-in: mmrazor quantization is unavailable on this torch.'
    stub.__mmkd_stub__ = True
    stub.BackendConfigs = _UnavailableBackendConfigs()
    for name in _BACKEND_FUNCS:
        setattr(stub, name, _unavailable(name))
    stub.__all__ = ['BackendConfigs'] + _BACKEND_FUNCS
    sys.modules[_BACKEND_CONFIG] = stub
    return True


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``getattr`` while unpickling, allowing only what mmengine needs.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allow-listing the real ``getattr`` would let a crafted
    checkpoint reach any attribute (and from there ``os.system``), so only
    ``HistoryBuffer.<public method>`` is given out; anything else is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        value = HistoryBuffer.__dict__.get(name, HistoryBuffer._statistics_methods.get(name))
        if callable(value):
            return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); mmkd only allows '
        'HistoryBuffer statistics methods under weights_only loading.')


def mmengine_checkpoint_safe_globals() -> List[Any]:
    """The non-tensor types mmengine 0.10.7 writes into training checkpoints."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    safe: List[Any] = [HistoryBuffer, np.ndarray, np.dtype,
                       (_history_buffer_getattr, 'builtins.getattr'),
                       (_history_buffer_getattr, '__builtin__.getattr')]
    # numpy scalars and arrays are pickled through these reconstructors
    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    safe += [_reconstruct, scalar]
    # np.dtype pickles as np.dtypes.<Kind>DType in numpy >= 1.25
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return safe


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list mmengine's checkpoint types for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no weights_only default to fight
        add(mmengine_checkpoint_safe_globals())


def torchvision_model_urls() -> dict:
    """``torchvision://`` names and their URLs, from the table mmengine ships."""
    import mmengine
    return mmengine.load(osp.join(mmengine.__path__[0], 'hub', 'torchvision_0.12.json'))


def install_torchvision_url_table() -> bool:
    """Resolve ``torchvision://`` names without torchvision when it is not installed.

    Returns True when the table is in use.
    """
    if importlib.util.find_spec('torchvision') is not None:
        return False
    import mmengine.runner.checkpoint as mmengine_checkpoint
    mmengine_checkpoint.get_torchvision_models = torchvision_model_urls
    return True


QUANTIZATION_STUBBED = install_mmrazor_quantization_stub()
allow_mmengine_checkpoint_types()
TORCHVISION_URL_TABLE = install_torchvision_url_table()
