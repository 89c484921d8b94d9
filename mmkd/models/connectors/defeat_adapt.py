"""DeFeat's per-level neck adaptation (3x3 conv, no activation).

Guo et al., "Distilling Object Detectors via Decoupled Features", CVPR 2021,
https://arxiv.org/abs/2103.14475. Matches ggjy/DeFeat.pytorch
``mmdet/models/detectors/two_stage_kd.py`` L50-62 (layers) and L99-102 (init:
``weight.normal_().fmod_(2) * 1e-4``, default bias). ``DeFeatLoss`` builds one internally
(``adapt=True``); it is registered so that it can also serve as a distiller connector.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class DeFeatAdapter(BaseModule):
    """One ``Conv2d(C_s, C_t, 3, padding=1)`` per level, weights ~ 1e-4 * fmod(N(0,1), 2).

    Args:
        student_channels (int): Student channels (every level). Defaults to 256.
        teacher_channels (int): Teacher channels (every level). Defaults to 256.
        num_levels (int): Number of levels. Defaults to 5.
        init_cfg (dict, optional): mmengine init config. Defaults to None (DeFeat's init).
    """

    def __init__(self,
                 student_channels: int = 256,
                 teacher_channels: int = 256,
                 num_levels: int = 5,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg)
        self.student_channels = student_channels
        self.convs = nn.ModuleList(
            nn.Conv2d(student_channels, teacher_channels, kernel_size=3, padding=1)
            for _ in range(num_levels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.weight.normal_().fmod_(2).mul_(1e-4)

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tuple[Tensor, ...]:
        levels = (feats, ) if isinstance(feats, Tensor) else tuple(feats)
        if len(levels) != len(self.convs):
            raise ValueError(f'DeFeatAdapter has {len(self.convs)} levels, got {len(levels)}')
        dtype = self.convs[0].weight.dtype
        outs = []
        for i, (feat, conv) in enumerate(zip(levels, self.convs)):
            if feat.dim() != 4 or feat.shape[1] != self.student_channels:
                raise ValueError(f'DeFeatAdapter level {i}: expected N x '
                                 f'{self.student_channels} x H x W, got {tuple(feat.shape)}')
            outs.append(conv(feat.to(dtype)))
        return tuple(outs)
