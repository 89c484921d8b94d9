"""DeFeat: the level each GT box is imitated on, and the decoupled fg/bg loss of each pixel."""
import numpy as np
import torch
from matplotlib.colors import Normalize

from mmkd.models.losses.defeat import DeFeatLoss, defeat_gt_masks, map_boxes_to_levels
from ..distill_scene import DistillScene, describe_source
from ..drawing import draw_boxes, level_name, show_map
from ..picture import Picture


def defeat_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``03_defeat.png``, one column per level: the binary GT mask of the boxes assigned to the
    level (:func:`map_boxes_to_levels`, :func:`defeat_gt_masks`), and the loss of each pixel,
    ``sum_c (A(S) - T)^2`` times ``w_fg / (L max(1, 2 C sum M))`` on the mask and
    ``w_bg / (L max(1, 2 C sum(1 - M)))`` off it, which sums to the loss's ``fg + bg``.

    The config's ``DeFeatLoss`` (strides, finest scale, weights, adaptation), else DeFeat's
    defaults on the neck's strides.
    """
    pic = scene.picture('defeat')
    if len(scene.gt_np) == 0:
        return pic.skip('no GT boxes to assign')
    feats_S, feats_T = scene.feats_S, scene.feats_T
    entry = scene.neck_loss(DeFeatLoss, lambda: DeFeatLoss(
        feats_S[0].shape[1], feats_T[0].shape[1], strides=[lv.stride for lv in scene.levels]))
    loss = entry.loss
    if len(loss.strides) != len(feats_T):
        return pic.skip(f'the config\'s {entry.name} has {len(loss.strides)} strides for '
                        f'{len(feats_T)} neck levels')
    if loss.adapt is not None:
        pic.banners += scene.untrained_banners('DeFeat adaptation', [entry])
    num = len(loss.strides)
    with torch.no_grad():
        adapted = loss.adapt(feats_S) if loss.adapt is not None else feats_S
        masks = defeat_gt_masks([scene.sample.gt_instances], [f.shape[-2:] for f in feats_T],
                                loss.strides, loss.finest_scale)
    gt_levels = map_boxes_to_levels(scene.gt_boxes, num, loss.finest_scale).tolist()
    fig, axes = pic.figure(
        2, num, f'DeFeat ({describe_source([entry], "DeFeat")}): GT level = floor(log2('
        f'sqrt((w+1)(h+1))/{loss.finest_scale:g})), mask = int(box/stride) block (top);\nloss '
        'per pixel = sum_c (A(S) - T)^2 w / (L max(1, 2 C #px)), fg (mask) and bg apart '
        '(bottom; sums to the loss\'s fg + bg)')
    fg_total, bg_total, numbers = 0.0, 0.0, []
    for col, (ft, fa, mask, stride) in enumerate(zip(feats_T, adapted, masks, loss.strides)):
        channels = ft.shape[1]
        m = mask[0]
        sq = (fa.float() - ft.float()).pow(2).sum(1)[0]
        num_fg = float(m.sum()) * channels
        num_bg = m.numel() * channels - num_fg
        fg = loss.loss_weight_fg * sq * m / max(1.0, 2 * num_fg) / num
        bg = loss.loss_weight_bg * sq * (1 - m) / max(1.0, 2 * num_bg) / num
        fg_total, bg_total = fg_total + fg.sum(), bg_total + bg.sum()
        ids = [i for i, lv in enumerate(gt_levels) if lv == col]
        name = f'{level_name(stride)} stride {stride}'
        show_map(axes[0, col], fig, np.ma.masked_equal(m.numpy(), 0), scene.pad_hw,
                 f'{name}: {len(ids)} GT {ids}\n{int(m.sum())}/{m.numel()} fg px',
                 cmap='autumn', norm=Normalize(0, 1), canvas=scene.canvas, alpha=0.55)
        show_map(axes[1, col], fig, (fg + bg).numpy(), scene.pad_hw,
                 f'{name} loss per pixel\nfg {fg.sum():.3g} + bg {bg.sum():.3g}',
                 cmap='inferno')
        for ax in axes[:, col]:
            draw_boxes(ax, scene.gt_np, color='#aaaaaa', lw=0.5, ls='--')
            draw_boxes(ax, scene.gt_np[ids], labels=[scene.gt_labels[i] for i in ids], lw=1.2)
        numbers.append(dict(stride=stride, gts=ids, fg_pixels=int(m.sum()),
                            fg=float(fg.sum()), bg=float(bg.sum())))
    pic.save(fig, out_dir, '03_defeat.png')
    pic.numbers.update(grid=[2, num], loss=entry.name or 'DeFeat defaults',
                       finest_scale=loss.finest_scale, gt_levels=gt_levels, levels=numbers,
                       fg=float(fg_total), bg=float(bg_total))
    pic.values.update(loss=loss, fg=fg_total, bg=bg_total, masks=masks)
    return pic
