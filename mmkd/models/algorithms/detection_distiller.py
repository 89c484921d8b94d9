"""mmrazor's ``ConfigurableDistiller`` with what detection losses need on top."""
import difflib
from typing import Dict, List

import torch
from mmrazor.models.distillers import ConfigurableDistiller
from mmrazor.models.task_modules import RecorderManager
from torch import nn

from mmkd.registry import MODELS
from ..recorders import BatchDataRecorder, is_module_recorder


@MODELS.register_module()
class DetectionDistiller(ConfigurableDistiller):
    """Configurable distiller for detectors.

    Same config as mmrazor's ``ConfigurableDistiller`` (recorders, connectors,
    ``distill_losses``, ``loss_forward_mappings``), plus:

    - losses are computed in fp32 with autocast off, whatever precision the models run in;
    - a loss that returns a dict (e.g. FGD's fg/bg/mask/global terms) is logged term by term as
      ``<loss name>_<key>``; every entry is summed into the total loss;
    - recorder sources are checked when the models are known, and an unknown module name is
      refused with the nearest real names;
    - ``mmkd.BatchData`` recorders receive the ground truth and RoIs from ``DetectionDistill``;
    - every logged term can be scaled by a multiplier in :attr:`loss_weights` (by loss name, or
      by term name ``<loss name>_<key>`` for a dict loss; a missing name is 1), which is how
      ``mmkd.DistillWeightsHook`` applies loss-weight schedules and automatic balancing.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: multipliers on top of each loss's own weights: loss or term name -> factor
        self.loss_weights: Dict[str, float] = {}
        #: the logged terms of the last call (term name -> its loss name), in order
        self.term_losses: Dict[str, str] = {}

    def prepare_from_student(self, model: nn.Module) -> None:
        _check_module_sources(self.student_recorders, model, 'student')
        super().prepare_from_student(model)

    def prepare_from_teacher(self, model: nn.Module) -> None:
        _check_module_sources(self.teacher_recorders, model, 'teacher')
        super().prepare_from_teacher(model)

    def batch_data_recorders(self, from_student: bool) -> List[BatchDataRecorder]:
        manager = self.student_recorders if from_student else self.teacher_recorders
        return [r for r in manager.recorders.values() if isinstance(r, BatchDataRecorder)]

    def needed_batch_data(self) -> set:
        """Names of the ``BatchData`` sources some loss asks for."""
        return {r.source for s in (True, False) for r in self.batch_data_recorders(s)}

    def term_weight(self, term: str) -> float:
        """The multiplier applied to a logged term (``loss_weights`` of its loss and its own)."""
        loss_name = self.term_losses.get(term, term)
        weight = self.loss_weights.get(loss_name, 1.0)
        return weight * self.loss_weights.get(term, 1.0) if term != loss_name else weight

    def compute_distill_losses(self) -> Dict[str, torch.Tensor]:
        losses: Dict[str, torch.Tensor] = dict()
        term_losses: Dict[str, str] = dict()
        device_type = 'cuda' if torch.cuda.is_available() else 'cpu'
        with torch.autocast(device_type=device_type, enabled=False):
            for loss_name, forward_mappings in self.loss_forward_mappings.items():
                kwargs = {key: self.get_record(**record)
                          for key, record in forward_mappings.items()}
                loss = self.distill_losses[loss_name](**kwargs)
                terms = {f'{loss_name}_{k}': v
                         for k, v in loss.items()} if isinstance(loss, dict) else {loss_name: loss}
                for term, value in terms.items():
                    term_losses[term] = loss_name
                    losses[term] = value
        self.term_losses = term_losses
        if self.loss_weights:
            losses = {term: value * self.term_weight(term) for term, value in losses.items()}
        return losses


def _check_module_sources(manager: RecorderManager, model: nn.Module, side: str) -> None:
    """Refuse a module recorder whose source is not a module of the model."""
    names = [name for name, _ in model.named_modules()]
    known = set(names)
    for rec_name, recorder in manager.recorders.items():
        if not is_module_recorder(recorder) or recorder.source in known:
            continue
        near = difflib.get_close_matches(recorder.source, names, n=5, cutoff=0.5)
        raise KeyError(
            f'{side} recorder {rec_name!r}: {recorder.source!r} is not a module of the {side} '
            f'({type(model).__name__}). Nearest module names: {near or names[:8]}. '
            f'Fix `{side}_recorders.{rec_name}.source` in the config.')
