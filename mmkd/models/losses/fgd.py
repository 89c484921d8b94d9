"""FGD: Focal and Global Knowledge Distillation for Detectors.

Yang et al., CVPR 2022, https://arxiv.org/abs/2111.11837. Official implementation:
yzd-v/FGD ``mmdet/distillation/losses/fgd.py`` (``FeatureLoss``; align L39-42, GT masks L83-106,
attention L120-133, focal loss L136-160, attention loss L163-167, global loss L170-213, init
L216-230). mmrazor 0.x ``FGDLoss`` is a port with identical math.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmkd.models.connectors.gcblock import GcBlock
from mmkd.models.utils.box_mask import concat_gt_boxes, meta_hw, rasterize_boxes_max
from mmkd.registry import MODELS
from .utils import float32_loss

BOX_SCALES = ('padded', 'img_shape')


@torch.no_grad()
def fgd_masks(batch_gt_instances: Sequence,
              batch_img_metas: Sequence[dict],
              feat_hw: Tuple[int, int],
              box_scale: str = 'padded',
              device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """FGD's foreground and background masks for one feature level, all boxes at once.

    The rule of yzd-v/FGD ``mmdet/distillation/losses/fgd.py`` L83-106 (current master, which
    fixed an earlier height/width swap): boxes scaled to the feature map, ``floor``/``ceil``
    extent, inclusive fill with ``1 / area`` (area in feature pixels of the inclusive extent),
    the maximum where boxes overlap (small boxes win); background mask =
    ``1[fg == 0] / sum(1[fg == 0])`` per image.

    Args:
        batch_gt_instances (Sequence[InstanceData]): GT of each image, ``.bboxes`` in input
            pixels (x1, y1, x2, y2).
        batch_img_metas (Sequence[dict]): metas with ``batch_input_shape`` and ``img_shape``.
        feat_hw (tuple): (H, W) of the feature map.
        box_scale (str): ``'padded'`` scales boxes by the padded batch shape
            (``batch_input_shape``), which is what the feature map covers; ``'img_shape'``
            scales by the un-padded image shape as the official code does (the two agree when
            an image is not padded).
        device: device of the returned masks.

    Returns:
        tuple: ``mask_fg`` and ``mask_bg``, both ``N x H x W`` float32. ``mask_fg`` holds
        ``1/area`` of the smallest covering box, ``mask_bg`` is ``1/#bg`` on background
        pixels of each image (all zero if the image has none).
    """
    if box_scale not in BOX_SCALES:
        raise ValueError(f'box_scale must be one of {BOX_SCALES}, got {box_scale!r}')
    if len(batch_gt_instances) != len(batch_img_metas):
        raise ValueError(f'got {len(batch_gt_instances)} gt instances and '
                         f'{len(batch_img_metas)} img metas')
    height, width = int(feat_hw[0]), int(feat_hw[1])
    num_imgs = len(batch_img_metas)
    boxes, img_inds = concat_gt_boxes(batch_gt_instances, device)
    device = boxes.device
    key = 'batch_input_shape' if box_scale == 'padded' else 'img_shape'
    shapes = torch.tensor([meta_hw(m, key) for m in batch_img_metas],
                          dtype=torch.float32, device=device).reshape(num_imgs, 2)
    box_hw = shapes[img_inds]  # M x 2 (h, w)
    # same operation order as the official code: coord / img_size * feat_size (float32)
    wmin = torch.floor(boxes[:, 0] / box_hw[:, 1] * width).long()
    wmax = torch.ceil(boxes[:, 2] / box_hw[:, 1] * width).long()
    hmin = torch.floor(boxes[:, 1] / box_hw[:, 0] * height).long()
    hmax = torch.ceil(boxes[:, 3] / box_hw[:, 0] * height).long()
    # area of the inclusive extent, before any cut at the map border (as official)
    area = 1.0 / (hmax + 1 - hmin).float() / (wmax + 1 - wmin).float()
    # inclusive [min, max] -> half-open [min, max + 1); a negative start is cut at 0 (the
    # official slice would count it from the end of the map)
    mask_fg = rasterize_boxes_max(hmin.clamp(min=0), hmax + 1, wmin.clamp(min=0), wmax + 1, area,
                                  img_inds, num_imgs, height, width)
    mask_bg = (mask_fg == 0).to(torch.float32)
    num_bg = mask_bg.sum(dim=(1, 2), keepdim=True)
    mask_bg = mask_bg / num_bg.clamp(min=1.0)
    return mask_fg, mask_bg


def fgd_attention(feat: Tensor, temp: float) -> Tuple[Tensor, Tensor]:
    """FGD's spatial and channel attention of an ``N x C x H x W`` map.

    ``S = H W softmax_{HW}(mean_c |F| / T)`` (N x H x W) and
    ``C = C softmax_C(mean_{HW} |F| / T)`` (N x C); both have mean 1.
    """
    n, c, h, w = feat.shape
    value = feat.abs()
    spatial = (h * w) * F.softmax(value.mean(dim=1).reshape(n, h * w) / temp, dim=1)
    channel = c * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial.reshape(n, h, w), channel


class _StudentStats(torch.autograd.Function):
    """Every full-size reduction of the student map FGD needs, with a hand-written backward.

    For S, T (N x C x HW; T constant), the teacher channel attention ``C_t`` (N x C) and the
    student GcBlock's attention conv (``w``: C, ``b``: 1) it returns

    * ``u = mean_c |S|`` (N x HW) and ``v = mean_hw |S|`` (N x C): the student attention inputs;
    * ``e = sum_c C_t (S - T)^2`` (N x HW): the focal loss before the spatial weights;
    * ``q = sum_{c,hw} (S - T)^2`` (N) and ``m = sum_hw (S - T)`` (N x C): the global loss
      ``sum (S - T + d)^2 = q + 2 d.m + HW |d|^2`` for a per-channel offset ``d``;
    * ``ctx = sum_hw softmax_hw(w.S + b) S`` (N x C): the student GcBlock context.

    Autograd would keep a dozen N x C x HW intermediates and run about thirty full-size
    kernels; this forward reads S a few times, and the backward assembles dL/dS in one buffer
    from rank-2 terms (``baddbmm``) -- the loss math is unchanged, the tests compare values and
    gradients against the official formulation.
    """

    @staticmethod
    def forward(ctx, S: Tensor, T: Tensor, att_c_t: Tensor, weight: Tensor, bias: Tensor):
        n, c, hw = S.shape
        abs_s = S.abs()
        u = abs_s.mean(dim=1)
        v = abs_s.mean(dim=2)
        del abs_s
        logits = torch.bmm(weight.reshape(1, 1, c).expand(n, 1, c), S).reshape(n, hw) + bias
        prob = F.softmax(logits, dim=1)
        context = torch.bmm(S, prob.unsqueeze(-1)).reshape(n, c)
        diff = S - T
        m = diff.sum(dim=2)
        diff.square_()
        rows = torch.stack([att_c_t, torch.ones_like(att_c_t)], dim=1)  # N x 2 x C
        eq = torch.bmm(rows, diff)  # N x 2 x HW
        del diff
        e, q = eq[:, 0], eq[:, 1].sum(dim=1)
        ctx.save_for_backward(S, T, att_c_t, weight, prob)
        ctx.bias_shape = bias.shape
        return u, v, e, q, m, context

    @staticmethod
    def backward(ctx, g_u, g_v, g_e, g_q, g_m, g_ctx):
        S, T, att_c_t, weight, prob = ctx.saved_tensors
        n, c, hw = S.shape

        def zeros_if_none(g, shape):
            return S.new_zeros(shape) if g is None else g

        g_u = zeros_if_none(g_u, (n, hw))
        g_v = zeros_if_none(g_v, (n, c))
        g_e = zeros_if_none(g_e, (n, hw))
        g_q = zeros_if_none(g_q, (n, ))
        g_m = zeros_if_none(g_m, (n, c))
        g_ctx = zeros_if_none(g_ctx, (n, c))
        ones_c, ones_hw = S.new_ones(n, c), S.new_ones(n, hw)

        # e, q: 2 (S - T) * (C_t[c] g_e[hw] + g_q), built as a rank-2 product
        coef = torch.bmm(torch.stack([att_c_t, ones_c], dim=2),
                         torch.stack([2 * g_e, (2 * g_q)[:, None].expand(n, hw)], dim=1))
        grad = (S - T).mul_(coef)
        del coef
        # u, v: sign(S) * (g_u[hw] / C + g_v[c] / HW)
        spread = torch.bmm(torch.stack([ones_c, g_v / hw], dim=2),
                           torch.stack([g_u / c, ones_hw], dim=1))
        grad.addcmul_(S.sign(), spread)
        del spread
        # context through the softmax attention
        g_prob = torch.bmm(g_ctx.unsqueeze(1), S).reshape(n, hw)
        g_logits = prob * (g_prob - (prob * g_prob).sum(dim=1, keepdim=True))
        # m, logits, context: g_m[c] + w[c] g_logits[hw] + g_ctx[c] prob[hw]
        grad.baddbmm_(
            torch.stack([g_m, weight.reshape(1, c).expand(n, c), g_ctx], dim=2),
            torch.stack([ones_hw, g_logits, prob], dim=1))
        g_weight = torch.bmm(S, g_logits.unsqueeze(-1)).sum(dim=0).reshape(weight.shape)
        g_bias = g_logits.sum().reshape(ctx.bias_shape)
        return grad, None, None, g_weight, g_bias


@MODELS.register_module()
class FGDLoss(nn.Module):
    r"""Focal (foreground/background, attention) and global distillation of one FPN level.

    With teacher attention :math:`A^S_t` (spatial), :math:`A^C_t` (channel) at temperature
    ``temp``, the GT masks :math:`M` (``1/area`` of the smallest covering box, 0 elsewhere) and
    :math:`B` (``1/#background`` on background pixels), and N the batch size:

    .. math::
        L_{fg} &= \tfrac{1}{N}\sum_{n,c,h,w} M A^S_t A^C_t (F^T - F^S)^2, \quad
        L_{bg} = \tfrac{1}{N}\sum B A^S_t A^C_t (F^T - F^S)^2 \\
        L_{mask} &= \tfrac{1}{N}\left(\sum|A^C_s - A^C_t| + \sum|A^S_s - A^S_t|\right), \quad
        L_{global} = \tfrac{1}{N}\sum (R_s(F^S) - R_t(F^T))^2

    :math:`R_s, R_t` are two GcBlocks (:class:`~mmkd.models.connectors.GcBlock`) with separate
    parameters; the teacher-side block is trained too. The teacher attention weights the
    student term as well (FGD issue #12).

    Matches the official ``FeatureLoss`` (see module docstring) with these deliberate
    differences:

    * boxes are scaled by the padded batch shape ``batch_input_shape`` by default
      (``box_scale='padded'``: the feature map covers the padded batch); ``box_scale='img_shape'``
      scales by the un-padded ``img_shape`` exactly as the official code. Both give the same
      masks for un-padded images.
    * masks are rasterised for all boxes at once (:func:`fgd_masks`); a box start
      left of/above the map is cut at 0 and a box entirely outside marks nothing, where the
      official slice would count negative indices from the far end. Areas are those of the
      un-cut extents, as official.
    * ``(S - T)^2`` is weighted by the attention product instead of squaring the
      ``sqrt``-weighted maps, and the global loss is expanded as
      ``sum (S - T)^2 + 2 sum_c d_c sum_hw (S - T) + HW sum d^2`` (``d``: the per-channel
      difference of the two GcBlock add terms); all full-size reductions of the student map
      run in one autograd Function with a hand-written backward (same values up to rounding,
      same gradients; about 3x fewer full-size kernels).
    * returns the four weighted terms as a dict (summed by the distiller) and always computes
      in float32 (see :mod:`mmkd.models.losses.utils`).

    Args:
        student_channels (int): Channels of the student feature map.
        teacher_channels (int): Channels of the teacher feature map; a 1x1 conv aligns the
            student when they differ.
        temp (float): Attention temperature. Defaults to 0.5.
        alpha_fgd (float): Weight of the foreground loss. Defaults to 1e-3.
        beta_fgd (float): Weight of the background loss. Defaults to 5e-4.
        gamma_fgd (float): Weight of the attention (mask) loss. Defaults to 1e-3.
        lambda_fgd (float): Weight of the global (relation) loss. Defaults to 5e-6.
        box_scale (str): ``'padded'`` (default) or ``'img_shape'``, see above.
    """

    def __init__(self,
                 student_channels: int,
                 teacher_channels: int,
                 temp: float = 0.5,
                 alpha_fgd: float = 1e-3,
                 beta_fgd: float = 5e-4,
                 gamma_fgd: float = 1e-3,
                 lambda_fgd: float = 5e-6,
                 box_scale: str = 'padded') -> None:
        super().__init__()
        if box_scale not in BOX_SCALES:
            raise ValueError(f'box_scale must be one of {BOX_SCALES}, got {box_scale!r}')
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.temp = temp
        self.alpha_fgd = alpha_fgd
        self.beta_fgd = beta_fgd
        self.gamma_fgd = gamma_fgd
        self.lambda_fgd = lambda_fgd
        self.box_scale = box_scale
        if student_channels != teacher_channels:
            self.align: Optional[nn.Module] = nn.Conv2d(student_channels, teacher_channels, 1)
        else:
            self.align = None
        self.gc_s = GcBlock(teacher_channels)
        self.gc_t = GcBlock(teacher_channels)

    def _check(self, preds_S: Tensor, preds_T: Tensor) -> None:
        if not isinstance(preds_S, Tensor) or not isinstance(preds_T, Tensor):
            raise TypeError('FGDLoss distils one level: pass N x C x H x W tensors (build one '
                            'FGDLoss per FPN level), got '
                            f'{type(preds_S).__name__} and {type(preds_T).__name__}')
        if preds_S.dim() != 4 or preds_T.dim() != 4:
            raise ValueError(f'FGDLoss expects N x C x H x W maps, got student '
                             f'{tuple(preds_S.shape)} and teacher {tuple(preds_T.shape)}')
        if preds_S.shape[1] != self.student_channels or \
                preds_T.shape[1] != self.teacher_channels:
            raise ValueError(
                f'FGDLoss(student_channels={self.student_channels}, teacher_channels='
                f'{self.teacher_channels}) got student {tuple(preds_S.shape)} and teacher '
                f'{tuple(preds_T.shape)}; set student_channels/teacher_channels to the recorded '
                'channels (a 1x1 align conv is added when they differ).')
        if preds_S.shape[0] != preds_T.shape[0] or preds_S.shape[2:] != preds_T.shape[2:]:
            raise ValueError(f'FGDLoss: student {tuple(preds_S.shape)} and teacher '
                             f'{tuple(preds_T.shape)} differ in batch or spatial size; record '
                             'the same FPN level (same stride) on both models.')

    @float32_loss
    def forward(self, preds_S: Tensor, preds_T: Tensor, batch_gt_instances: Sequence,
                batch_img_metas: Sequence[dict]) -> Dict[str, Tensor]:
        """Compute the four weighted FGD terms of one level.

        Args:
            preds_S (Tensor): Student feature map, N x C_s x H x W.
            preds_T (Tensor): Teacher feature map, N x C_t x H x W.
            batch_gt_instances (Sequence[InstanceData]): ``.bboxes`` (x1y1x2y2, input pixels;
                Tensor or HorizontalBoxes) per image.
            batch_img_metas (Sequence[dict]): per-image metas with ``batch_input_shape``
                (``box_scale='padded'``) or ``img_shape`` (``box_scale='img_shape'``).

        Returns:
            dict: ``fg``, ``bg``, ``mask``, ``global`` float32 scalars, already weighted.
        """
        self._check(preds_S, preds_T)
        if len(batch_gt_instances) != preds_S.shape[0]:
            raise ValueError(f'FGDLoss: batch of {preds_S.shape[0]} feature maps but '
                             f'{len(batch_gt_instances)} gt instances')
        feat_S, feat_T = preds_S, preds_T.detach()
        if self.align is not None:
            feat_S = self.align(feat_S)
        n, c, h, w = feat_T.shape

        with torch.no_grad():
            att_s_t, att_c_t = fgd_attention(feat_T, self.temp)
        mask_fg, mask_bg = fgd_masks(batch_gt_instances, batch_img_metas, (h, w),
                                     self.box_scale, device=feat_T.device)

        conv_mask = self.gc_s.conv_mask
        u_s, v_s, per_pixel, sq_sum, diff_sum, ctx_s = _StudentStats.apply(
            feat_S.reshape(n, c, h * w), feat_T.reshape(n, c, h * w), att_c_t,
            conv_mask.weight.reshape(c), conv_mask.bias)

        # focal feature loss: sum_{c} M S_t C_t (S - T)^2
        per_pixel = per_pixel * att_s_t.reshape(n, h * w)
        loss_fg = (per_pixel * mask_fg.reshape(n, h * w)).sum() / n
        loss_bg = (per_pixel * mask_bg.reshape(n, h * w)).sum() / n

        # attention loss, with the student attention from its mean |S| maps
        att_s_s = (h * w) * F.softmax(u_s / self.temp, dim=1)
        att_c_s = c * F.softmax(v_s / self.temp, dim=1)
        loss_mask = ((att_c_s - att_c_t).abs().sum() +
                     (att_s_s - att_s_t.reshape(n, h * w)).abs().sum()) / n

        # global loss sum((S + a_s) - (T + a_t))^2 with per-channel a = GcBlock add term:
        # sum (S - T)^2 + 2 sum_c d sum_hw (S - T) + HW sum d^2, d = a_s - a_t
        delta = (self.gc_s.transform(ctx_s) - self.gc_t.channel_add(feat_T)).reshape(n, c)
        loss_global = (sq_sum.sum() + 2 * (delta * diff_sum).sum() +
                       (h * w) * delta.pow(2).sum()) / n

        return {
            'fg': self.alpha_fgd * loss_fg,
            'bg': self.beta_fgd * loss_bg,
            'mask': self.gamma_fgd * loss_mask,
            'global': self.lambda_fgd * loss_global,
        }
