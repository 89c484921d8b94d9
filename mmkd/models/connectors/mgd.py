"""MGD connector: align, random mask, generation block.

Yang et al., "Masked Generative Distillation", ECCV 2022, https://arxiv.org/abs/2205.01529.
Matches yzd-v/MGD ``det/mmdet/distillation/losses/mgd.py`` L30-38 (layers) and L58-71 (mask),
``cls/mmcls/distillation/losses/mgd.py`` L57-71 (channel mask) and mmrazor
``mmrazor/models/architectures/connectors/mgd_connector.py`` L25-71.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class MGDConnector(BaseModule):
    r"""Generate the teacher feature from a randomly masked student feature.

    ``out = G(align(F^S) * M)`` with ``align`` a 1x1 conv when the channel counts differ and
    ``G`` = conv3x3 - ReLU - conv3x3 (``teacher_channels`` wide, bias, PyTorch default init).

    The mask is redrawn on every call, ``M = 0 where U > 1 - lambda_mgd else 1`` with
    ``U ~ U[0, 1)``, spatial (``N x 1 x H x W``, shared by all channels; detection, default) or
    per channel (``N x C x 1 x 1``, ``mask_on_channel=True``; the official classification code
    writes ``U < lambda_mgd``, statistically the same; the rule here is mmrazor's). So
    ``lambda_mgd`` is the expected fraction masked.

    Deliberate differences: the uniform numbers are drawn directly on the input's device
    (mmrazor and the official code draw on the CPU and copy, a host-device transfer each step;
    on the CPU the draws are identical for the same seed); the input is cast to the
    connector's parameter dtype (fp16 features with fp32 weights crash in mmrazor, #190).

    Args:
        student_channels (int): Channels of the student feature.
        teacher_channels (int): Channels of the teacher feature (and of the output).
        lambda_mgd (float): Masked ratio. Defaults to 0.65.
        mask_on_channel (bool): Mask channels instead of positions. Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 lambda_mgd: float = 0.65,
                 mask_on_channel: bool = False,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg)
        if not 0.0 <= lambda_mgd <= 1.0:
            raise ValueError(f'lambda_mgd is a ratio in [0, 1], got {lambda_mgd}')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.lambda_mgd = lambda_mgd
        self.mask_on_channel = mask_on_channel
        if student_channels != teacher_channels:
            self.align: Optional[nn.Module] = nn.Conv2d(student_channels, teacher_channels, 1)
        else:
            self.align = None
        self.generation = nn.Sequential(
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(teacher_channels, teacher_channels, kernel_size=3, padding=1))

    def random_mask(self, feature: Tensor) -> Tensor:
        """Draw the keep-mask (1 = kept, 0 = masked) on ``feature``'s device and dtype."""
        n, c, h, w = feature.shape
        shape = (n, c, 1, 1) if self.mask_on_channel else (n, 1, h, w)
        keep = torch.rand(shape, device=feature.device) <= 1 - self.lambda_mgd
        return keep.to(feature.dtype)

    def forward(self, feature: Tensor) -> Tensor:
        """Masked generation of the student feature (N x C_s x H x W -> N x C_t x H x W)."""
        if not isinstance(feature, Tensor) or feature.dim() != 4 or \
                feature.shape[1] != self.student_channels:
            shape = tuple(feature.shape) if isinstance(feature, Tensor) else type(feature)
            raise ValueError(f'MGDConnector(student_channels={self.student_channels}) expects '
                             f'N x {self.student_channels} x H x W, got {shape}; use one '
                             'connector per FPN level with the recorded channel count.')
        feature = feature.to(self.generation[0].weight.dtype)
        if self.align is not None:
            feature = self.align(feature)
        return self.generation(feature * self.random_mask(feature))
