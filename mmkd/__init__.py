"""mmkd: knowledge distillation for object detectors on mmdet 3.x and mmrazor 1.x."""
from . import compat  # noqa: F401  (must run before anything imports mmrazor)
from .version import __version__

# importing the sub-packages registers every mmkd module
from . import datasets, engine, models  # noqa: F401,E402

__all__ = ['__version__']
