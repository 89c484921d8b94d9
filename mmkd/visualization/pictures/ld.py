"""LD: the main distillation region (the student's ATSS positives) and the VLR."""
import copy
from typing import Tuple

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from mmkd.models.algorithms.model_cfg import expand_model_cfg
from mmkd.models.losses.ld_gfl import GFLLDLoss
from ..distill_scene import DistillScene, describe_source
from ..drawing import TITLE_FS, draw_boxes, gray, level_name, show_map, value_range
from ..picture import Picture

REGIONS_PANEL_IN = 5.0
MAIN_CMAP, VLR_CMAP = 'viridis', 'plasma'


def student_ld_loss(scene: DistillScene) -> Tuple[GFLLDLoss, str, bool]:
    """The config's ``GFLLDLoss``, else one on the student head's anchors and assigner;
    with a description and whether it is the config's."""
    for found in scene.config_losses(GFLLDLoss):
        return found.loss, describe_source([found], 'LD'), True
    student_cfg = expand_model_cfg(copy.deepcopy(scene.cfg.model.architecture))
    head_cfg = student_cfg.get('bbox_head')
    if not head_cfg or 'anchor_generator' not in head_cfg or hasattr(scene.model.student,
                                                                     'roi_head'):
        raise ValueError(f'the student ({type(scene.model.student).__name__}) has no one-stage '
                         'anchor head (bbox_head.anchor_generator): LD\'s regions are defined '
                         'on GFL/ATSS anchors')
    train_cfg = student_cfg.get('train_cfg') or {}
    loss = GFLLDLoss(
        num_classes=head_cfg.get('num_classes', 80), reg_max=head_cfg.get('reg_max', 16),
        anchor_generator=head_cfg['anchor_generator'].to_dict(),
        assigner=dict(train_cfg.get('assigner', dict(type='ATSSAssigner', topk=9))),
        allowed_border=train_cfg.get('allowed_border', -1),
        pos_weight=train_cfg.get('pos_weight', -1))
    return loss, 'LD defaults on the student head\'s anchors, not in the config', False


def _centres(boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2


def ld_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``04_ld_regions.png`` and ``05_ld_levels.png``: where LD distils.

    The main region is the student's own ATSS positives (Main LD, and Main KD, weighted there by
    the student's max sigmoid class score); the valuable localisation region (VLR) is every
    anchor whose LD "DIoU" with a GT lies in ``[gamma alpha_pos, alpha_pos)`` (VLR LD, weighted
    by its IoU). Both come from the loss's own ``get_targets`` (with the VLR even when the
    config's loss trains without it); the per-level loss values from its forward.
    """
    pic = scene.picture('ld')
    if len(scene.gt_np) == 0:
        return pic.skip('no GT boxes: no positives, no VLR')
    try:
        loss, source, from_config = student_ld_loss(scene)
    except ValueError as err:
        return pic.skip(str(err))
    student, teacher = scene.model.student, scene.model.teacher
    with torch.no_grad():
        head_S = student.bbox_head(scene.feats_S)
    cls_scores = head_S[0]
    sizes = [c.shape[-2:] for c in cls_scores]
    strides = [int(s[0]) for s in loss.prior_generator.strides]
    if len(sizes) != len(strides):
        return pic.skip(f'{len(sizes)} head levels but {len(strides)} anchor strides')
    gt, metas = [scene.sample.gt_instances], [scene.sample.metainfo]
    anchors, labels, _, vlr = loss.get_targets(sizes, gt, metas, with_vlr=True)
    terms = None
    if hasattr(teacher, 'bbox_head') and not hasattr(teacher, 'roi_head'):
        with torch.no_grad():
            try:
                terms = loss(head_S, teacher.bbox_head(scene.feats_T), gt, metas,
                             return_levels=True)
            except ValueError as err:
                pic.note(f'no LD loss values: {err}')
    levels = []
    for lvl, cls in enumerate(cls_scores):
        score = cls[0].permute(1, 2, 0).reshape(-1, cls.shape[1]).sigmoid().max(1)[0]
        pos = labels[lvl][0] < loss.num_classes
        levels.append(dict(
            stride=strides[lvl], hw=tuple(sizes[lvl]), anchors=anchors[lvl][0].numpy(),
            pos=pos.numpy(), main_weight=(score * pos).numpy(), vlr=vlr[lvl][0].numpy(),
            main_ld=float(terms['main_ld'][lvl]) if terms else None,
            vlr_ld=float(terms['vlr_ld'][lvl]) if terms and loss.with_vlr else None))
    if from_config:
        vlr_use = 'the config trains with VLR' if loss.with_vlr else \
            'the config trains WITHOUT VLR LD'
    else:
        vlr_use = 'VLR LD'
    _regions_figure(scene, pic, out_dir, levels, source, vlr_use)
    _levels_figure(scene, pic, out_dir, levels)
    pic.numbers.update(
        source=source, gamma=loss.vlr_gamma, topk=loss.vlr_topk, with_vlr=loss.with_vlr,
        main_anchors=int(sum(lv['pos'].sum() for lv in levels)),
        vlr_anchors=int(sum((lv['vlr'] > 0).sum() for lv in levels)),
        levels=[dict(stride=lv['stride'], hw=list(lv['hw']), main=int(lv['pos'].sum()),
                     vlr=int((lv['vlr'] > 0).sum()), main_ld=lv['main_ld'],
                     vlr_ld=lv['vlr_ld']) for lv in levels])
    pic.values.update(loss=loss, head_S=head_S, levels=levels, terms=terms)
    return pic


def _regions_figure(scene, pic, out_dir, levels, source, vlr_use):
    """Anchor centres over the image: the main region (left), the VLR with the main region
    on top (right); marker size grows with the level's stride."""
    h, w = scene.pad_hw
    fig, axes = pic.figure(
        1, 2, f'LD regions on the student\'s anchors ({source})\nmain region = the student\'s '
        'ATSS positives (Main LD, Main KD); one marker per anchor centre, larger for coarser '
        'levels\nVLR = anchors with gamma alpha_pos <= DIoU_LD < alpha_pos '
        f'({vlr_use}); GT boxes dashed', REGIONS_PANEL_IN)
    sizes = {lv['stride']: 10 + 14 * k for k, lv in enumerate(levels)}
    main_w = np.concatenate([lv['main_weight'][lv['pos']] for lv in levels])
    vlr_w = np.concatenate([lv['vlr'][lv['vlr'] > 0] for lv in levels])
    main_norm = Normalize(*(float(main_w.min()), float(main_w.max())) if main_w.size else (0, 1))
    vlr_norm = Normalize(*(float(vlr_w.min()), float(vlr_w.max())) if vlr_w.size else (0, 1))
    for ax in axes[0]:
        ax.imshow(gray(scene.canvas), cmap='gray', extent=(0, w, h, 0), alpha=0.35, vmin=0,
                  vmax=255)
    main_ax, vlr_ax = axes[0]
    for lv in reversed(levels):  # coarse (large markers) first, fine on top
        xs, ys = _centres(lv['anchors'][lv['pos']])
        main_ax.scatter(xs, ys, s=sizes[lv['stride']], c=lv['main_weight'][lv['pos']],
                        cmap=MAIN_CMAP, norm=main_norm, edgecolors='black', linewidths=0.4)
        in_vlr = lv['vlr'] > 0
        xs, ys = _centres(lv['anchors'][in_vlr])
        vlr_ax.scatter(xs, ys, s=sizes[lv['stride']], c=lv['vlr'][in_vlr], cmap=VLR_CMAP,
                       norm=vlr_norm, marker='s', edgecolors='black', linewidths=0.4)
    for lv in levels:  # the main region on top of the VLR, as white crosses
        xs, ys = _centres(lv['anchors'][lv['pos']])
        vlr_ax.scatter(xs, ys, s=45, marker='P', c='white', edgecolors='black',
                       linewidths=0.8)
    for ax, title, cmap, norm, label in (
            (main_ax, f'main region: {main_w.size} ATSS positives\ncolour = Main-LD weight '
             f'(max sigmoid class score), {value_range(main_w)}', MAIN_CMAP, main_norm,
             'Main-LD weight'),
            (vlr_ax, f'VLR: {vlr_w.size} anchors (squares), main region on top (white '
             f'crosses)\ncolour = VLR-LD weight (IoU with the GT), {value_range(vlr_w)}',
             VLR_CMAP, vlr_norm, 'VLR weight (IoU)')):
        draw_boxes(ax, scene.gt_np, color='black', lw=1.2, ls='--')
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(title, fontsize=TITLE_FS + 1)
        ax.tick_params(labelsize=6)
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=colormaps[cmap]), ax=ax,
                          fraction=0.046, pad=0.02)
        cb.set_label(label, fontsize=7)
        cb.ax.tick_params(labelsize=6)
    handles = [Line2D([], [], ls='', marker='s', color='#b0b0b0', markeredgecolor='black',
                      markersize=6, label='VLR anchor centre'),
               Line2D([], [], ls='', marker='P', color='white', markeredgecolor='black',
                      markersize=7, label='main region (ATSS positive)'),
               Line2D([], [], ls='--', color='black', label='GT box')]
    handles += [Line2D([], [], ls='', marker='o', color='#b0b0b0', markeredgecolor='black',
                       markersize=np.sqrt(sizes[lv['stride']]), label=f'stride {lv["stride"]}')
                for lv in levels]
    vlr_ax.legend(handles=handles, fontsize=6, loc='upper right', framealpha=0.9)
    pic.save(fig, out_dir, '04_ld_regions.png')


def _levels_figure(scene, pic, out_dir, levels):
    """Per level on the student's grid: the Main-LD weight (top) and the VLR weight (bottom),
    each row on one scale."""
    fig, axes = pic.figure(
        2, len(levels), 'LD per level on the student\'s grid: Main-LD weight on the ATSS '
        'positives (top), VLR weight (IoU) on the VLR (bottom), each row on one scale; the '
        'image shows elsewhere')
    norms = []
    for key in ('main_weight', 'vlr'):
        shown = np.concatenate([lv[key][lv[key] > 0] for lv in levels])
        norms.append(Normalize(float(shown.min()), float(shown.max())) if shown.size else
                     Normalize(0, 1))
    for col, lv in enumerate(levels):
        hh, ww = lv['hw']
        name = f"{level_name(lv['stride'])} s{lv['stride']}"
        main_map = lv['main_weight'].reshape(hh, ww)
        vlr_map = lv['vlr'].reshape(hh, ww)
        loss_txt = '' if lv['main_ld'] is None else f', Main LD {lv["main_ld"] + 0.0:.3g}'
        show_map(axes[0, col], fig, np.ma.masked_equal(main_map, 0), scene.pad_hw,
                 f'{name} main: {int(lv["pos"].sum())} positives{loss_txt}\n'
                 f'{value_range(main_map[main_map > 0])}', cmap=MAIN_CMAP, norm=norms[0],
                 canvas=scene.canvas, alpha=0.85)
        loss_txt = '' if lv['vlr_ld'] is None else f', VLR LD {lv["vlr_ld"] + 0.0:.3g}'
        show_map(axes[1, col], fig, np.ma.masked_equal(vlr_map, 0), scene.pad_hw,
                 f'{name} VLR: {int((vlr_map > 0).sum())} anchors{loss_txt}\n'
                 f'{value_range(vlr_map[vlr_map > 0])}', cmap=VLR_CMAP, norm=norms[1],
                 canvas=scene.canvas, alpha=0.85)
        for ax in axes[:, col]:
            draw_boxes(ax, scene.gt_np, color='white', lw=0.8, ls='--')
    pic.save(fig, out_dir, '05_ld_levels.png')
