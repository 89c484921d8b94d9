from .batch_data import (BATCH_DATA_SOURCES, ROI_LOGIT_SOURCES, ROI_SOURCES,  # noqa: F401
                         BatchDataRecorder)
from .kinds import MODULE_RECORDERS, is_module_recorder  # noqa: F401
from .level_outputs import LevelOutputsRecorder  # noqa: F401
