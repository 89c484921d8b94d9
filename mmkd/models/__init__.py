from . import algorithms, connectors, losses, recorders, utils  # noqa: F401
