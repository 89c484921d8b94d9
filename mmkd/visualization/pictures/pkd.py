"""PKD: the per-channel normalised maps of teacher and student and their Pearson r."""
import numpy as np
import torch
from matplotlib.colors import Normalize

from mmkd.models.losses.pkd import PKDLoss, pkd_channel_loss
from ..distill_scene import DistillScene, describe_source
from ..drawing import TITLE_FS, draw_boxes, show_map
from ..picture import Picture

SHOWN_CHANNELS = 2  # the lowest and the highest r


def pkd_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``07_pkd.png``, one row per level: the Pearson correlation r of every channel (sorted)
    and, for the channels with the lowest and the highest r, the maps PKD compares: each
    channel normalised to mean 0 and std 1 (:meth:`PKDLoss.norm`), teacher and student. The
    level's loss is ``loss_weight`` times the mean of :func:`pkd_channel_loss`, about
    ``(1 - r) (M - 1) / M`` per channel (M = H W positions).

    Each level uses the config's ``PKDLoss`` of that level, else PKD's defaults.
    """
    pic = scene.picture('pkd')
    levels = scene.spatial_levels(pic)
    if not levels:
        return pic.skip('every level is 1x1')
    losses = scene.level_losses(PKDLoss, levels, lambda lv: PKDLoss())
    ncols = 1 + 2 * SHOWN_CHANNELS
    fig, axes = pic.figure(
        len(levels), ncols, f'PKD per level ({describe_source(list(losses.values()), "PKD")}): '
        'Pearson r of each channel, teacher vs student (sorted), and the per-channel '
        'normalised maps (F - mean_c)/std_c\nof the channels with the lowest and the highest r '
        '(teacher, student); level loss = w mean_c 1/2 mean (S^ - T^)^2 ~ w (1 - mean r)')
    numbers = []
    for row, level in enumerate(levels):
        entry = losses[level.index]
        ft = scene.feats_T[level.index].float()
        fs = scene.feats_S[level.index].float()
        if fs.shape != ft.shape:
            axes[row, 0].set_title(f'{level.name}: student {tuple(fs.shape)} vs teacher '
                                   f'{tuple(ft.shape)}', fontsize=TITLE_FS)
            pic.note(f'{level.name} left out: student and teacher shapes differ')
            for ax in axes[row]:
                ax.axis('off')
            continue
        with torch.no_grad():
            norm_S, norm_T = PKDLoss.norm(fs), PKDLoss.norm(ft)
            per_channel = pkd_channel_loss(norm_S, norm_T)
            level_loss = entry.loss.loss_weight * per_channel.mean()
            r = (norm_S * norm_T).sum((0, 2, 3)) / (
                norm_S.pow(2).sum((0, 2, 3)) * norm_T.pow(2).sum((0, 2, 3))).sqrt()
        order = torch.argsort(r)
        ax = axes[row, 0]
        ax.fill_between(np.arange(len(r)), r[order].numpy(), step='mid', color='#4c72b0')
        ax.axhline(float(r.mean()), color='#dd8452', lw=1.0, label=f'mean {r.mean():.3f}')
        ax.set_ylim(min(-0.1, float(r.min()) - 0.05), 1.05)
        ax.set_xlabel('channels, sorted by r', fontsize=6)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc='lower right')
        ax.set_title(f'{level.name} s{level.stride}: Pearson r per channel\nlevel loss '
                     f'{float(level_loss):.4g}', fontsize=TITLE_FS)
        for j, ch in enumerate((int(order[0]), int(order[-1]))):
            for k, (maps, who) in enumerate(((norm_T, 'teacher'), (norm_S, 'student'))):
                m = maps[0, ch].numpy()
                lim = max(float(np.abs(norm_T[0, ch]).max()), float(np.abs(norm_S[0, ch]).max()))
                axp = axes[row, 1 + 2 * j + k]
                show_map(axp, fig, m, scene.pad_hw,
                         f'{level.name} {who} channel {ch}, normalised\nr {float(r[ch]):.3f}',
                         cmap='RdBu_r', norm=Normalize(-lim, lim))
                draw_boxes(axp, scene.gt_np, lw=0.6)
        pic.values[level.name] = dict(index=level.index, loss=entry.loss, r=r,
                                      per_channel=per_channel, level_loss=level_loss)
        numbers.append(dict(level=level.name, stride=level.stride, loss=entry.name or
                            'PKD defaults', mean_r=float(r.mean()), min_r=float(r.min()),
                            level_loss=float(level_loss)))
    pic.save(fig, out_dir, '07_pkd.png')
    pic.numbers.update(grid=[len(levels), ncols], levels=numbers)
    return pic
