"""Teacher and student feature energy per neck level, and their difference."""
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import TwoSlopeNorm

from ..distill_scene import DistillScene
from ..drawing import draw_boxes, show_map, value_range
from ..picture import Picture


def energy(feat: torch.Tensor) -> np.ndarray:
    """``mean_c |F|`` of the first image of an N x C x H x W map, H x W."""
    return feat[0].abs().mean(0).detach().float().numpy()


def feature_energy_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``01_feature_energy.png``: per level ``mean_c |F|`` of teacher and student and T - S."""
    pic = scene.picture('feature_energy')
    if len(scene.feats_S) != len(scene.feats_T):
        return pic.skip(f'the teacher has {len(scene.feats_T)} neck levels, the student '
                        f'{len(scene.feats_S)}')
    levels = scene.spatial_levels(pic)
    if not levels:
        return pic.skip('every level is 1x1')
    fig, axes = pic.figure(len(levels), 3, 'Feature energy mean_c |F| per neck level: '
                           'teacher, student, teacher - student (each map on its own scale)')
    numbers = []
    for row, level in enumerate(levels):
        ft, fs = scene.feats_T[level.index], scene.feats_S[level.index]
        name = f'{level.name} (stride {level.stride})'
        et, es = energy(ft), energy(fs)
        if et.shape != es.shape:
            es = F.interpolate(torch.from_numpy(es)[None, None], size=et.shape,
                               mode='bilinear', align_corners=False)[0, 0].numpy()
        diff = et - es
        lim = max(float(np.abs(diff).max()), 1e-12)
        show_map(axes[row, 0], fig, et, scene.pad_hw,
                 f'{name} teacher C={ft.shape[1]} {et.shape[0]}x{et.shape[1]}\n'
                 f'{value_range(et)}')
        show_map(axes[row, 1], fig, es, scene.pad_hw,
                 f'{name} student C={fs.shape[1]}\n{value_range(es)}')
        show_map(axes[row, 2], fig, diff, scene.pad_hw,
                 f'{name} T - S\nmean|T-S| {np.abs(diff).mean():.3g}', cmap='RdBu_r',
                 norm=TwoSlopeNorm(0.0, -lim, lim))
        for ax in axes[row]:
            draw_boxes(ax, scene.gt_np, lw=0.6)
        numbers.append(dict(level=level.name, stride=level.stride, hw=list(et.shape),
                            mean_abs_diff=float(np.abs(diff).mean())))
    pic.save(fig, out_dir, '01_feature_energy.png')
    pic.numbers.update(grid=[len(levels), 3], levels=numbers)
    return pic
