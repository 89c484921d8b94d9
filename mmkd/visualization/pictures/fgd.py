"""FGD: the attention, the GT masks and the focal feature loss of each pixel."""
import torch
from matplotlib.colors import Normalize

from mmkd.models.losses.fgd import FGDLoss, fgd_attention, fgd_masks
from ..distill_scene import DistillScene, describe_source
from ..drawing import draw_boxes, show_map, value_range
from ..picture import Picture


def fgd_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``02_fgd.png``, one row per level: teacher and student spatial attention
    ``A = HW softmax(mean_c |F| / T)`` (:func:`fgd_attention`), the masks M (``1/area``) and
    B (``1/#bg``) (:func:`fgd_masks`), and the focal loss of each pixel
    ``(alpha M + beta B) A_t sum_c C_t (S - T)^2``, which sums to the loss's ``fg + bg``.

    Each level uses the config's ``FGDLoss`` of that level (temperature, weights, box scale,
    align conv), else FGD's defaults.
    """
    pic = scene.picture('fgd')
    if len(scene.gt_np) == 0:
        return pic.skip('no GT boxes: the foreground mask is empty')
    levels = scene.spatial_levels(pic)
    if not levels:
        return pic.skip('every level is 1x1')
    losses = scene.level_losses(
        FGDLoss, levels,
        lambda lv: FGDLoss(scene.feats_S[lv.index].shape[1], scene.feats_T[lv.index].shape[1]))
    pic.banners += scene.untrained_banners(
        'FGD align conv', [e for e in losses.values() if e.loss.align is not None])
    fig, axes = pic.figure(
        len(levels), 5, f'FGD per level ({describe_source(list(losses.values()), "FGD")}): '
        'spatial attention A = HW softmax(mean_c|F|/T), fg mask M = 1/area, bg mask B = 1/#bg;'
        '\nfocal loss per pixel = (alpha M + beta B) A_t sum_c C_t (S - T)^2 (sums to the '
        'loss\'s fg + bg)')
    numbers, values = [], {}
    for row, level in enumerate(levels):
        entry = losses[level.index]
        loss = entry.loss
        ft = scene.feats_T[level.index].float()
        fs = scene.feats_S[level.index].float()
        name = f'{level.name} s{level.stride}'
        h, w = ft.shape[-2:]
        with torch.no_grad():
            if loss.align is not None:
                fs = loss.align(fs)
            att_t, chan_t = fgd_attention(ft, loss.temp)
            att_s, _ = fgd_attention(fs, loss.temp)
            m_fg, m_bg = fgd_masks([scene.sample.gt_instances], [scene.sample.metainfo], (h, w),
                                   loss.box_scale)
            per_pixel = att_t * (chan_t[:, :, None, None] * (fs - ft).pow(2)).sum(1)
            fg = loss.alpha_fgd * (m_fg * per_pixel)[0]
            bg = loss.beta_fgd * (m_bg * per_pixel)[0]
        att_t, att_s = att_t[0].numpy(), att_s[0].numpy()
        n_fg = int((m_fg > 0).sum())
        show_map(axes[row, 0], fig, att_t, scene.pad_hw,
                 f'{name} teacher attention A_t\n{value_range(att_t)}', cmap='magma')
        show_map(axes[row, 1], fig, att_s, scene.pad_hw,
                 f'{name} student attention A_s\n{value_range(att_s)}', cmap='magma')
        show_map(axes[row, 2], fig, m_fg[0].numpy(), scene.pad_hw,
                 f'{name} fg mask M = 1/area\n{n_fg}/{h * w} px, max {m_fg.max():.3g}',
                 norm=Normalize(0, float(m_fg.max()) or 1.0))
        show_map(axes[row, 3], fig, m_bg[0].numpy(), scene.pad_hw,
                 f'{name} bg mask B = 1/#bg\n{h * w - n_fg} px, value {m_bg.max():.3g}',
                 norm=Normalize(0, float(m_bg.max()) or 1.0))
        show_map(axes[row, 4], fig, (fg + bg).numpy(), scene.pad_hw,
                 f'{name} focal loss per pixel\nfg {fg.sum():.3g} + bg {bg.sum():.3g}',
                 cmap='inferno')
        for ax in axes[row]:
            draw_boxes(ax, scene.gt_np, lw=0.6)
        values[level.name] = dict(index=level.index, loss=loss, fg=fg.sum(), bg=bg.sum(),
                                  mask_fg=m_fg, mask_bg=m_bg)
        numbers.append(dict(level=level.name, stride=level.stride, hw=[h, w], fg_pixels=n_fg,
                            loss=entry.name or 'FGD defaults', temp=loss.temp,
                            alpha=loss.alpha_fgd, beta=loss.beta_fgd, box_scale=loss.box_scale,
                            fg=float(fg.sum()), bg=float(bg.sum())))
    pic.save(fig, out_dir, '02_fgd.png')
    pic.numbers.update(grid=[len(levels), 5], levels=numbers)
    pic.values.update(values)
    return pic
