"""A recorder for a module that a detection head calls once per FPN level."""
from typing import Any, Tuple

from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder
from torch import nn

from mmkd.registry import TASK_UTILS


@TASK_UTILS.register_module()  # configs say 'mmkd.LevelOutputs': mmrazor appends 'Recorder'
class LevelOutputsRecorder(ModuleOutputsRecorder):
    """Records every call of a module as one record: the list of its outputs, call by call.

    A dense head shares its convs over the FPN levels (mmdet's ``multi_apply`` calls
    ``forward_single`` level by level), so mmrazor's ``ModuleOutputs`` on
    ``bbox_head.cls_convs.2`` keeps one record per level and a loss mapping gets one of them
    (``record_idx``). This recorder keeps them together, so a loss that needs all levels at once
    (e.g. CrossKD, whose normalisation runs over every level) gets the list of levels, and
    ``data_idx=i`` still picks level i::

        student_recorders=dict(cls_feat=dict(type='mmkd.LevelOutputs',
                                             source='bbox_head.cls_convs.2'))
    """

    def forward_hook(self, module: nn.Module, inputs: Tuple, outputs: Any) -> None:
        if not self.recording:
            return
        if not self.data_buffer:
            self.data_buffer.append([])
        self.data_buffer[0].append(outputs)
