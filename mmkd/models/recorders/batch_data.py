"""A recorder that hands the batch's ground truth to distillation losses."""
from typing import Any, Optional

from mmrazor.models.task_modules.recorder.base_recorder import BaseRecorder
from torch import nn

from mmkd.registry import TASK_UTILS

#: two-stage students only: both RoI heads' class logits on the student's sampled RoIs
ROI_LOGIT_SOURCES = ('student_roi_cls_scores', 'teacher_roi_cls_scores')
#: two-stage students only: the student's sampled RoIs (K x 5), their labels (background =
#: num_classes) and the RoI logits above
ROI_SOURCES = ('rois', 'roi_labels') + ROI_LOGIT_SOURCES
#: what a ``BatchData`` recorder can give a loss; filled by ``DetectionDistill`` every step
BATCH_DATA_SOURCES = ('batch_gt_instances', 'batch_img_metas', 'batch_data_samples') + ROI_SOURCES


@TASK_UTILS.register_module()  # configs say 'mmkd.BatchData': mmrazor appends 'Recorder'
class BatchDataRecorder(BaseRecorder):
    """Records a piece of the current batch rather than a module's output.

    Used like any mmrazor recorder, so ``loss_forward_mappings`` stay in mmrazor's format::

        student_recorders=dict(gt=dict(type='mmkd.BatchData', source='batch_gt_instances'))
        ...
        batch_gt_instances=dict(from_student=True, recorder='gt')

    Sources: ``batch_gt_instances`` (list of InstanceData with ``bboxes`` x1y1x2y2 in input
    pixels and ``labels``), ``batch_img_metas`` (list of dicts with ``img_shape``,
    ``batch_input_shape``, ``pad_shape``), ``batch_data_samples`` and, for two-stage students,
    ``rois``, ``roi_labels``, ``student_roi_cls_scores``, ``teacher_roi_cls_scores``.
    """

    def __init__(self, source: str) -> None:
        if source not in BATCH_DATA_SOURCES:
            raise ValueError(f'BatchData recorder source must be one of {BATCH_DATA_SOURCES}, '
                             f'got {source!r}.')
        super().__init__(source)

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        """Nothing to hook: the algorithm pushes the data in."""

    def record(self, data: Any) -> None:
        self.data_buffer.append(data)
