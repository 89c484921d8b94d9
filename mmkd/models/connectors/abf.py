"""ReviewKD's attention-based fusion (ABF) connector for FPN features.

Chen et al., "Distilling Knowledge via Knowledge Review", CVPR 2021,
https://arxiv.org/abs/2104.09044. Matches dvlab-research/ReviewKD
``Detection/model/kd_trans.py`` L5-40 (ABF) and L42-73 (review order, ``build_kd_trans``);
identical copy in megvii-research/mdistiller ``detection/model/reviewkd.py``.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmkd.registry import MODELS


class ABF(nn.Module):
    """One attention-based fusion block.

    ``x = BN(conv1x1(x))``; with fusion, ``y`` (the residual of the next coarser level) is
    nearest-upsampled to ``x``, ``z = sigmoid(conv1x1([x, y]))`` (2 maps) and
    ``x = x * z_0 + y * z_1``; ``out = BN(conv3x3(x))``. Returns ``(out, x)``.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.att_conv: Optional[nn.Module] = nn.Sequential(
            nn.Conv2d(mid_channels * 2, 2, kernel_size=1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, x.shape[-2:], mode='nearest')
            z = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * z[:, 0:1] + residual * z[:, 1:2]
        return self.conv2(x), x


@MODELS.register_module()
class ABFConnector(BaseModule):
    """ReviewKD's review connector: fuse the student's FPN levels coarse-to-fine.

    Takes the tuple of student levels (finest first, e.g. P2..P6) and returns the tuple of
    transformed levels in the same order. The coarsest level goes through an ABF without
    fusion; each finer level is fused with the residual of the level above it.

    Args:
        in_channels (int | Sequence[int]): Student channels per level. Defaults to 256.
        out_channels (int | Sequence[int]): Teacher channels per level. Defaults to 256.
        mid_channels (int): Fusion width. Defaults to 256.
        num_levels (int): Number of levels when the channels are given as ints. Defaults to 5.
        init_cfg (dict, optional): mmengine init config. Defaults to None (ReviewKD's init:
            kaiming-uniform(a=1) convs, default BN and attention conv).
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int]] = 256,
                 out_channels: Union[int, Sequence[int]] = 256,
                 mid_channels: int = 256,
                 num_levels: int = 5,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg)
        if isinstance(in_channels, int):
            in_channels = [in_channels] * num_levels
        if isinstance(out_channels, int):
            out_channels = [out_channels] * len(in_channels)
        if len(in_channels) != len(out_channels):
            raise ValueError(f'ABFConnector: {len(in_channels)} in_channels but '
                             f'{len(out_channels)} out_channels')
        self.in_channels = tuple(in_channels)
        num = len(in_channels)
        # abfs[i] serves level i (finest first); only the coarsest has no fusion
        self.abfs = nn.ModuleList(
            ABF(cin, mid_channels, cout, fuse=i < num - 1)
            for i, (cin, cout) in enumerate(zip(in_channels, out_channels)))

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Review the student levels (finest first) and return them fused, finest first."""
        if isinstance(feats, Tensor) or len(feats) != len(self.abfs):
            got = 'a single tensor' if isinstance(feats, Tensor) else f'{len(feats)} levels'
            raise ValueError(f'ABFConnector expects a tuple of {len(self.abfs)} levels '
                             f'(record the whole neck output), got {got}')
        dtype = self.abfs[0].conv1[0].weight.dtype
        for i, (feat, cin) in enumerate(zip(feats, self.in_channels)):
            if feat.dim() != 4 or feat.shape[1] != cin:
                raise ValueError(f'ABFConnector level {i}: expected N x {cin} x H x W, got '
                                 f'{tuple(feat.shape)}')
        outs = [None] * len(feats)
        residual = None
        for i in reversed(range(len(feats))):
            outs[i], residual = self.abfs[i](feats[i].to(dtype), residual)
        return tuple(outs)
