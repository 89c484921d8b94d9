r"""Global context block used by FGD's global (relation) distillation.

Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
https://arxiv.org/abs/1904.11492, in the form FGD uses it (yzd-v/FGD
``mmdet/distillation/losses/fgd.py`` L44-55 layers, L170-203 forward, L216-230 init):

.. math:: R(F) = F + W_2\,\mathrm{ReLU}(\mathrm{LN}(W_1 \sum_j
          \mathrm{softmax}_j(W_k F)_j\, F_j))

with ``W_k`` a 1x1 conv to one channel (kaiming-normal, fan_in), ``W_1``/``W_2`` 1x1 convs
C -> C/2 -> C and ``W_2`` zero-initialised, so ``R`` starts as the identity.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS


@MODELS.register_module()
class GcBlock(nn.Module):
    """Global context block: ``x + channel_add(context(x))``.

    Args:
        channels (int): Channels of the input (and output) feature map.
        ratio (float): Bottleneck ratio of the channel-add transform. Defaults to 0.5 (FGD).
    """

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        hidden = int(channels * ratio)
        if hidden < 1:
            raise ValueError(f'GcBlock: channels={channels} x ratio={ratio} leaves no hidden '
                             'channel')
        self.channels = channels
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """FGD's init: kaiming-normal (fan_in) attention conv, zero last conv."""
        nn.init.kaiming_normal_(self.conv_mask.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def attention(self, x: Tensor) -> Tensor:
        """Softmax over positions of ``conv_mask(x)``: N x HW (the 1x1 conv as a matmul)."""
        n, c, h, w = x.shape
        weight = self.conv_mask.weight.reshape(1, 1, c).expand(n, 1, c)
        logits = torch.bmm(weight, x.reshape(n, c, h * w))
        return F.softmax(logits.reshape(n, h * w) + self.conv_mask.bias, dim=1)

    def context(self, x: Tensor) -> Tensor:
        """Attention-pooled context ``sum_j softmax_j(conv_mask(x)) x_j``: N x C x 1 x 1."""
        n, c, h, w = x.shape
        weights = self.attention(x).unsqueeze(-1)
        return torch.bmm(x.reshape(n, c, h * w), weights).reshape(n, c, 1, 1)

    def channel_add(self, x: Tensor) -> Tensor:
        """The per-channel term added to every position: N x C x 1 x 1."""
        return self.transform(self.context(x))

    def transform(self, context: Tensor) -> Tensor:
        """``channel_add_conv`` of a context given as N x C or N x C x 1 x 1."""
        return self.channel_add_conv(context.reshape(context.shape[0], -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f'GcBlock({self.channels}) expects N x {self.channels} x H x W, got '
                             f'{tuple(x.shape)}')
        return x + self.channel_add(x)
