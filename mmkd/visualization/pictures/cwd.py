"""CWD: each channel's spatial distribution of teacher and student, and their KL."""
import math

import numpy as np
import torch
from matplotlib.colors import Normalize, TwoSlopeNorm

from mmkd.models.losses.cwd import ChannelWiseDivergence, channel_divergence
from ..distill_scene import DistillScene, describe_source
from ..drawing import draw_boxes, show_map
from ..picture import Picture


def _channel_grid(values: np.ndarray) -> np.ndarray:
    """C values as a near-square grid, row-major, the empty tail masked."""
    cols = int(math.ceil(math.sqrt(values.size)))
    rows = int(math.ceil(values.size / cols))
    grid = np.ma.masked_all((rows * cols, ))
    grid[:values.size] = values
    return grid.reshape(rows, cols)


def cwd_picture(scene: DistillScene, out_dir: str, top: int = 4) -> Picture:
    """``06_cwd_<level>.png`` per level: the divergence of every channel
    (:func:`channel_divergence` summed over positions: ``KL(p_T || p_S)`` with
    ``p = softmax_HW(F_c / tau)``) as a grid, where it comes from (summed over channels), and
    the spatial distributions of teacher and student for the ``top`` channels with the
    largest divergence. ``loss_weight tau^2 / C`` times the channel values' sum is the
    level's loss.

    Each level uses the config's ``ChannelWiseDivergence`` of that level (tau, form, align
    conv), else CWD's defaults (tau 1, KL).
    """
    pic = scene.picture('cwd')
    levels = scene.spatial_levels(pic)
    if not levels:
        return pic.skip('every level is 1x1')
    losses = scene.level_losses(ChannelWiseDivergence, levels, lambda lv: ChannelWiseDivergence(
        student_channels=scene.feats_S[lv.index].shape[1],
        teacher_channels=scene.feats_T[lv.index].shape[1]))
    pic.banners += scene.untrained_banners(
        'CWD align conv', [e for e in losses.values() if e.loss.align is not None])
    source = describe_source(list(losses.values()), 'CWD')
    numbers = []
    for level in levels:
        entry = losses[level.index]
        loss = entry.loss
        ft = scene.feats_T[level.index].float()
        fs = scene.feats_S[level.index].float()
        with torch.no_grad():
            if loss.align is not None:
                fs = loss.align(fs)
            if fs.shape != ft.shape:
                pic.note(f'{level.name} left out: student {tuple(fs.shape)} and teacher '
                         f'{tuple(ft.shape)} differ and no align conv makes them equal')
                continue
            terms = channel_divergence(fs, ft, loss.tau, loss.form)[0]
            p_T = torch.softmax(ft[0].flatten(1) / loss.tau, dim=1)
            p_S = torch.softmax(fs[0].flatten(1) / loss.tau, dim=1)
        c, h, w = terms.shape
        per_channel = terms.sum(dim=(1, 2))
        per_position = terms.sum(dim=0)
        level_loss = loss.loss_weight * loss.tau**2 * per_channel.sum() / c
        k = min(top, c)
        top_values, channels = per_channel.topk(k)
        divergence = 'KL(p_T||p_S)' if loss.form == 'kl' else 'CE(p_T, p_S)'
        fig, axes = pic.figure(
            2, k + 1, f'CWD {level.name} (stride {level.stride}, {h}x{w}, C={c}; {source}, tau '
            f'{loss.tau:g}): {divergence} of each channel\'s spatial softmax(F_c/tau); level '
            f'loss = w tau^2/C sum_c = {float(level_loss):.4g}\nleft: per channel (top) and per '
            f'position (bottom, summed over channels); right: the {k} channels with the largest '
            f'{divergence}, teacher (top) and student (bottom) on one scale')
        grid = _channel_grid(per_channel.numpy())
        show_map(axes[0, 0], fig, grid, grid.shape,
                 f'{divergence} per channel\n(channel c at row c // {grid.shape[1]}), sum '
                 f'{float(per_channel.sum()):.4g}')
        axes[0, 0].set_xlim(0, grid.shape[1])
        axes[0, 0].set_ylim(grid.shape[0], 0)
        lim = max(float(per_position.abs().max()), 1e-12)
        show_map(axes[1, 0], fig, per_position.numpy(), scene.pad_hw,
                 f'per position, summed over channels\nsum {float(per_position.sum()):.4g}',
                 cmap='RdBu_r', norm=TwoSlopeNorm(0.0, -lim, lim))
        draw_boxes(axes[1, 0], scene.gt_np, lw=0.6)
        for j, (ch, val) in enumerate(zip(channels.tolist(), top_values.tolist())):
            pt = p_T[ch].reshape(h, w).numpy()
            ps = p_S[ch].reshape(h, w).numpy()
            norm = Normalize(0.0, max(float(pt.max()), float(ps.max()), 1e-12))
            show_map(axes[0, j + 1], fig, pt, scene.pad_hw,
                     f'teacher channel {ch}: {val:.3g}\nmax p {pt.max():.3g}', norm=norm)
            show_map(axes[1, j + 1], fig, ps, scene.pad_hw,
                     f'student channel {ch}\nmax p {ps.max():.3g}', norm=norm)
            for ax in axes[:, j + 1]:
                draw_boxes(ax, scene.gt_np, lw=0.6)
        pic.save(fig, out_dir, f'06_cwd_{level.name}.png')
        pic.values[level.name] = dict(index=level.index, loss=loss, per_channel=per_channel,
                                      per_position=per_position, level_loss=level_loss)
        numbers.append(dict(level=level.name, stride=level.stride, hw=[h, w], grid=[2, k + 1],
                            loss=entry.name or 'CWD defaults', tau=loss.tau,
                            top_channels=channels.tolist(), top_values=top_values.tolist(),
                            level_loss=float(level_loss)))
    if not numbers:
        return pic.skip('no level where student and teacher maps have the same shape')
    pic.numbers.update(levels=numbers)
    return pic
