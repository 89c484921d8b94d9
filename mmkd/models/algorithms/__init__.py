from .detection_distill import DetectionDistill  # noqa: F401
from .detection_distiller import DetectionDistiller  # noqa: F401
