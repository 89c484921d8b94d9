"""Recorder kinds, told apart by class (mmrazor's module recorders and mmkd's ``BatchData``)."""
from mmrazor.models.task_modules.recorder import ModuleInputsRecorder, ModuleOutputsRecorder

#: recorders that hook a module of the model (``source`` is a module name)
MODULE_RECORDERS = (ModuleOutputsRecorder, ModuleInputsRecorder)


def is_module_recorder(recorder) -> bool:
    """Whether ``recorder`` records a module's inputs or outputs."""
    return isinstance(recorder, MODULE_RECORDERS)
