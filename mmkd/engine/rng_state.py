"""The state of every random number generator training draws from: capture and restore.

Training draws from four generators: Python's ``random`` and NumPy's global generator (data
augmentation such as ``RandomFlip``, run in the main process when ``num_workers=0``), torch's
CPU generator (samplers of the RPN / RoI heads on CPU, random masks such as MGD's, the
``DataLoader``'s per-iterator base seed) and, when CUDA is in use, torch's CUDA generators (the
same draws on the GPU). :func:`capture_rng_state` takes all of them, :func:`restore_rng_state`
puts them back. The state is made of tuples, ints, a NumPy ``uint32`` array and uint8 tensors,
all of which ``torch.load(weights_only=True)`` accepts (see :mod:`mmkd.compat`).
"""
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def _cuda_in_use() -> bool:
    # an uninitialised CUDA has drawn nothing; initialising it here would cost a context
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture_rng_state() -> dict:
    """Python's, NumPy's, torch's CPU and (when initialised) every CUDA device's RNG state."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if _cuda_in_use():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back what :func:`capture_rng_state` took.

    CUDA states are restored device by device, as far as both the saved state and this machine
    have devices (a state saved on a CPU-only machine holds none).
    """
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available():
        for device, device_state in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block without a trace in any random number generator."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
