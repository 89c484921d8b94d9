"""MGD: the random mask, the masked student feature, the generated and the teacher feature."""
import numpy as np
import torch
from matplotlib.colors import Normalize

from mmkd.models.connectors.mgd import MGDConnector
from mmkd.models.losses.mgd import MGDLoss
from ..distill_scene import LossEntry, DistillScene, describe_source
from ..drawing import draw_boxes, show_map, value_range
from ..picture import Picture
from .feature_energy import energy


def mgd_picture(scene: DistillScene, out_dir: str, seed: int = 0) -> Picture:
    """``08_mgd.png``, one row per level: the connector's random mask M (1 = kept; drawn by
    the connector's own forward, replayed from ``seed``), the masked student feature
    ``align(S) M``, the generated feature ``G(align(S) M)``, the teacher feature (energies
    ``mean_c |F|``), and the squared error ``sum_c (G - T)^2`` of each pixel, which times
    ``alpha_mgd`` sums to the level's ``MGDLoss``.

    Each level uses the config's ``MGDLoss`` and ``MGDConnector`` of that level, else MGD's
    defaults (a new, untrained connector).
    """
    pic = scene.picture('mgd')
    levels = scene.spatial_levels(pic)
    if not levels:
        return pic.skip('every level is 1x1')
    losses = scene.level_losses(MGDLoss, levels, lambda lv: MGDLoss())
    connectors = {}
    for index, entry in losses.items():
        if isinstance(entry.connector, MGDConnector):
            connectors[index] = entry
        else:  # the method's defaults: a new, untrained connector
            connectors[index] = LossEntry(None, entry.loss, index, MGDConnector(
                scene.feats_S[index].shape[1], scene.feats_T[index].shape[1]).eval(), True)
    pic.banners += scene.untrained_banners('MGD connector', list(connectors.values()))
    fig, axes = pic.figure(
        len(levels), 5, f'MGD per level ({describe_source(list(connectors.values()), "MGD")}): '
        'the random mask M (1 = kept), the masked student align(S) M, the generated G(align(S)'
        ' M), the teacher T (energies mean_c |F|)\nand sum_c (G - T)^2 per pixel (alpha_mgd '
        'times its sum = the level\'s loss)')
    numbers = []
    for row, level in enumerate(levels):
        entry = connectors[level.index]
        connector, loss = entry.connector, entry.loss
        ft = scene.feats_T[level.index].float()
        fs = scene.feats_S[level.index]
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generated = connector(fs)
            torch.manual_seed(seed)  # the same draw again: the mask the forward used
            aligned = connector.align(fs.float()) if connector.align is not None else fs.float()
            mask = connector.random_mask(aligned)
            error = (generated - ft).pow(2).sum(1)[0]
        level_loss = loss.alpha_mgd * error.sum()
        masked = aligned * mask
        name = f'{level.name} s{level.stride}'
        kept = float(mask.mean())
        keep_map = mask[0].expand(-1, *ft.shape[-2:]).mean(0).numpy()  # spatial or channel
        show_map(axes[row, 0], fig, np.ma.masked_equal(keep_map, 1),
                 scene.pad_hw, f'{name} mask M: {1 - kept:.0%} masked\n(dark = masked, image '
                 'shows where kept)', cmap='gray', norm=Normalize(0, 1), canvas=scene.canvas,
                 alpha=0.9, colorbar=False)
        en_masked, en_gen, en_t = energy(masked), energy(generated), energy(ft)
        show_map(axes[row, 1], fig, en_masked, scene.pad_hw,
                 f'{name} masked student align(S) M\n{value_range(en_masked)}')
        show_map(axes[row, 2], fig, en_gen, scene.pad_hw,
                 f'{name} generated G(align(S) M)\n{value_range(en_gen)}')
        show_map(axes[row, 3], fig, en_t, scene.pad_hw,
                 f'{name} teacher T\n{value_range(en_t)}')
        show_map(axes[row, 4], fig, error.numpy(), scene.pad_hw,
                 f'{name} sum_c (G - T)^2\nlevel loss {float(level_loss):.4g}', cmap='inferno')
        for ax in axes[row, 1:]:
            draw_boxes(ax, scene.gt_np, lw=0.6)
        pic.values[level.name] = dict(index=level.index, loss=loss, connector=connector,
                                      mask=mask, aligned=aligned, generated=generated,
                                      level_loss=level_loss)
        numbers.append(dict(level=level.name, stride=level.stride, masked=1 - kept,
                            connector=entry.name or 'MGD defaults', level_loss=float(level_loss)))
    pic.save(fig, out_dir, '08_mgd.png')
    pic.numbers.update(grid=[len(levels), 5], seed=seed, levels=numbers)
    return pic
