"""ReviewKD: the ABF fusion attention and HCL's pyramid of each level."""
import numpy as np
import torch
from matplotlib.colors import Normalize

from mmkd.models.connectors.abf import ABFConnector
from mmkd.models.losses.reviewkd import HCLLoss, hcl_pyramid
from ..distill_scene import LossEntry, DistillScene, describe_source
from ..drawing import TITLE_FS, draw_boxes, show_map, value_range
from ..picture import Picture
from .feature_energy import energy


def _review(connector: ABFConnector, feats):
    """The connector's output and the attention ``z`` (N x 2 x H x W) of each fusing ABF,
    recorded from its own ``att_conv`` (None for the coarsest level)."""
    attention = [None] * len(connector.abfs)
    handles = []
    for i, abf in enumerate(connector.abfs):
        if abf.att_conv is not None:
            handles.append(abf.att_conv.register_forward_hook(
                lambda module, args, out, i=i: attention.__setitem__(i, out)))
    try:
        with torch.no_grad():
            outs = connector(feats)
    finally:
        for handle in handles:
            handle.remove()
    return outs, attention


def reviewkd_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``09_reviewkd_abf.png`` and ``10_reviewkd_hcl.png``.

    ABF, one row per level: the student level, the fusion weights ``z_0`` (this level) and
    ``z_1`` (the upsampled residual of the level above) that the ABF's attention conv gives,
    the fused output and the teacher level (energies ``mean_c |F|``). HCL, one row per level:
    ``mean_c (S' - T)^2`` on the full map and on each pooled ``l x l`` map of
    :func:`hcl_pyramid`, with the weight and MSE of each; the level's loss is
    ``sum(w MSE) / sum(w)`` and the loss ``loss_weight`` times their sum.

    The config's ``HCLLoss`` and its ``ABFConnector`` (fed the whole neck), else ReviewKD's
    defaults (a new, untrained connector).
    """
    pic = scene.picture('reviewkd')
    feats_S, feats_T = scene.feats_S, scene.feats_T
    if len(feats_S) != len(feats_T):
        return pic.skip(f'{len(feats_S)} student and {len(feats_T)} teacher neck levels')
    entry = scene.neck_loss(HCLLoss, HCLLoss)
    if not isinstance(entry.connector, ABFConnector):
        entry = LossEntry(None, entry.loss, None, ABFConnector(
            [f.shape[1] for f in feats_S], [f.shape[1] for f in feats_T],
            num_levels=len(feats_S)).eval(), True)
    pic.banners += scene.untrained_banners('ABF connector', [entry])
    loss, connector = entry.loss, entry.connector
    outs, attention = _review(connector, feats_S)
    source = describe_source([entry], 'ReviewKD')
    rows = len(scene.levels)

    fig, axes = pic.figure(
        rows, 5, f'ReviewKD attention-based fusion ({source}), coarse to fine: student level S, '
        'fusion weights z_0 (S) and z_1 (the residual of the level above),\nfused output S\', '
        'teacher T (energies mean_c |F|); the coarsest level has no fusion')
    for level, fs, out, ft, z in zip(scene.levels, feats_S, outs, feats_T, attention):
        row = level.index
        name = f'{level.name} s{level.stride}'
        show_map(axes[row, 0], fig, energy(fs), scene.pad_hw, f'{name} student S')
        if z is None:
            for col in (1, 2):
                axes[row, col].axis('off')
            axes[row, 1].set_title(f'{name}: coarsest level,\nno fusion', fontsize=TITLE_FS)
        else:
            for col in (0, 1):
                zc = z[0, col].numpy()
                show_map(axes[row, col + 1], fig, zc, scene.pad_hw,
                         f'{name} z_{col} ({"own level" if col == 0 else "from above"})\n'
                         f'{value_range(zc)}', cmap='magma', norm=Normalize(0, 1))
        show_map(axes[row, 3], fig, energy(out), scene.pad_hw, f'{name} fused output S\'')
        show_map(axes[row, 4], fig, energy(ft), scene.pad_hw, f'{name} teacher T')
        for ax in axes[row]:
            draw_boxes(ax, scene.gt_np, lw=0.6)
    pic.save(fig, out_dir, '09_reviewkd_abf.png')

    pyramids = [hcl_pyramid(out.float(), ft.float(), loss.pool_sizes)
                for out, ft in zip(outs, feats_T)]
    ncols = max(len(p) for p in pyramids)
    level_losses = []
    fig, axes = pic.figure(
        rows, ncols, f'ReviewKD HCL ({source}): mean_c (S\' - T)^2 on the full map and on '
        f'each pooled l x l map (pool sizes {loss.pool_sizes}, those smaller than the map), one '
        'scale per level;\nlevel loss = sum(w MSE) / sum(w), loss = loss_weight x sum over '
        'levels')
    for level, pyramid in zip(scene.levels, pyramids):
        row = level.index
        mses = [float((p_S - p_T).pow(2).mean()) for _, p_S, p_T in pyramid]
        level_loss = sum(w * m for (w, _, _), m in zip(pyramid, mses)) / sum(
            w for w, _, _ in pyramid)
        level_losses.append(level_loss)
        maps = [(p_S - p_T).pow(2).mean(1)[0].numpy() for _, p_S, p_T in pyramid]
        norm = Normalize(0.0, max(float(m.max()) for m in maps) or 1.0)  # one scale per level
        for col, ((weight, p_S, _), mse, sq) in enumerate(zip(pyramid, mses, maps)):
            size = 'full' if col == 0 else f'{p_S.shape[-1]}x{p_S.shape[-1]}'
            show_map(axes[row, col], fig, sq, scene.pad_hw,
                     f'{level.name} {size}: w {weight:g}, MSE {mse:.3g}' +
                     (f'\nlevel loss {level_loss:.4g}' if col == 0 else ''), cmap='inferno',
                     norm=norm)
            draw_boxes(axes[row, col], scene.gt_np, lw=0.6)
        for col in range(len(pyramid), ncols):
            axes[row, col].axis('off')
    pic.save(fig, out_dir, '10_reviewkd_hcl.png')
    total = loss.loss_weight * float(np.sum(level_losses))
    pic.numbers.update(source=source, pool_sizes=list(loss.pool_sizes),
                       level_losses=level_losses, loss=total)
    pic.values.update(loss=loss, connector=connector, outs=outs, attention=attention,
                      level_losses=level_losses, total=total)
    return pic
