"""DKD: target and non-target class probabilities of RoIs, for teacher and student."""
import numpy as np
import torch
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData

from mmkd.models.losses.dkd import DKDLoss, dkd_terms
from ..distill_scene import DistillScene, describe_source
from ..drawing import TITLE_FS, draw_boxes
from ..image_sample import class_names
from ..picture import Picture

PANEL_IN = 2.5
SHOWN_FG, SHOWN_BG = 4, 4
MAX_BARS = 12
TEACHER_COLOR, STUDENT_COLOR = '#4c72b0', '#dd8452'


def picture_rois(scene: DistillScene):
    """RoIs as the student's RoI head trains on them: its RPN proposals plus the GT boxes
    (mmdet's samplers add them), labelled by its ``bbox_assigner`` (the GT's class, or
    background = K); the ``SHOWN_FG`` foreground ones (proposals first) and the ``SHOWN_BG``
    background proposals with the highest RPN scores. Returns (boxes, labels, IoUs)."""
    student = scene.model.student
    gt = scene.sample.gt_instances
    with torch.no_grad():
        proposals = student.rpn_head.predict(scene.feats_S, [scene.sample], rescale=False)[0]
    boxes = torch.cat([proposals.bboxes, scene.gt_boxes])
    result = student.roi_head.bbox_assigner.assign(InstanceData(priors=boxes), gt)
    num_classes = student.roi_head.bbox_head.num_classes
    labels = torch.where(result.gt_inds > 0, result.labels,
                         torch.full_like(result.labels, num_classes))
    ious = result.max_overlaps
    fg = (result.gt_inds > 0).nonzero().squeeze(1)[:SHOWN_FG]
    bg = (result.gt_inds == 0).nonzero().squeeze(1)[:SHOWN_BG]  # proposals come score-sorted
    keep = torch.cat([fg, bg])
    return boxes[keep], labels[keep], ious[keep]


def dkd_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``11_dkd.png``, one column per RoI: the RoI on the image, the binary split
    ``b = [p_gt, 1 - p_gt]`` of teacher and student (TCKD compares them) and the non-target
    distribution ``p^`` over the other classes (NCKD compares them), from :func:`dkd_terms`
    on both RoI heads' logits of the same RoIs (each model pooling its own features, as in
    training; RoIs from :func:`picture_rois`). ``loss_weight (alpha sum TCKD + beta sum NCKD)
    tau^2 / B`` over the shown RoIs is ``DKDLoss`` on them.

    The config's ``DKDLoss`` (tau, alpha, beta), else DKD's defaults.
    """
    pic = scene.picture('dkd')
    student, teacher = scene.model.student, scene.model.teacher
    if not (hasattr(student, 'roi_head') and hasattr(teacher, 'roi_head')):
        return pic.skip('DKD distils RoI-head class logits: student and teacher must be '
                        f'two-stage detectors ({type(student).__name__}, '
                        f'{type(teacher).__name__})')
    found = scene.config_losses(DKDLoss)
    loss = found[0].loss if found else DKDLoss()
    boxes, labels, ious = picture_rois(scene)
    if len(boxes) == 0:
        return pic.skip('no RoIs')
    rois = bbox2roi([boxes])
    with torch.no_grad():
        logits_S = student.roi_head._bbox_forward(scene.feats_S, rois)['cls_score']
        logits_T = teacher.roi_head._bbox_forward(scene.feats_T, rois)['cls_score']
        terms = dkd_terms(logits_S.float(), logits_T.float(), labels, loss.tau)
    num, num_logits = len(boxes), logits_S.shape[1]
    scale = loss.tau**2 / num
    total = loss.loss_weight * (loss.alpha * terms.tckd.sum() + loss.beta * terms.nckd.sum()) * \
        scale
    names = list(class_names(scene.cfg))
    names = names if len(names) == num_logits - 1 else [str(k) for k in range(num_logits - 1)]
    names.append('background')
    fig, axes = pic.figure(
        3, num, f'DKD on {num} RoIs ({describe_source(found[:1], "DKD")}: tau {loss.tau:g}, '
        f'alpha {loss.alpha:g}, beta {loss.beta:g}): target vs non-target probability b (TCKD, '
        'middle) and the non-target distribution (NCKD, bottom),\nteacher blue, student '
        f'orange; w (alpha sum TCKD + beta sum NCKD) tau^2/B = {float(total):.4g}', PANEL_IN)
    h, w = scene.pad_hw
    for col in range(num):
        label = int(labels[col])
        x1, y1, x2, y2 = boxes[col].tolist()
        ax = axes[0, col]
        ax.imshow(scene.canvas, extent=(0, w, h, 0))
        draw_boxes(ax, scene.gt_np, color='white', lw=0.6, ls='--')
        draw_boxes(ax, np.array([[x1, y1, x2, y2]]), color='#ff3030', lw=1.6)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f'RoI {col}: {names[label]}\nIoU with GT {float(ious[col]):.2f}',
                     fontsize=TITLE_FS)
        ax = axes[1, col]
        for k, (b, color, who) in enumerate(((terms.binary_T, TEACHER_COLOR, 'teacher'),
                                             (terms.binary_S, STUDENT_COLOR, 'student'))):
            ax.bar(np.arange(2) + (k - 0.5) * 0.4, b[col].numpy(), width=0.4, color=color,
                   label=who)
        ax.set_xticks([0, 1])
        ax.set_xticklabels([f'p({names[label]})', 'other classes'], fontsize=6)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
        ax.set_title(f'TCKD {float(terms.tckd[col]):.3g}', fontsize=TITLE_FS)
        ax = axes[2, col]
        others = [k for k in range(num_logits) if k != label]
        shown = 'non-target'
        if len(others) > MAX_BARS:  # the largest, by the larger of the two probabilities
            larger = torch.maximum(terms.nontarget_T[col], terms.nontarget_S[col])[others]
            others = [others[k] for k in larger.topk(MAX_BARS).indices.tolist()]
            shown = f'{MAX_BARS} largest non-target'
        for k, (q, color) in enumerate(((terms.nontarget_T, TEACHER_COLOR),
                                        (terms.nontarget_S, STUDENT_COLOR))):
            ax.barh(np.arange(len(others)) + (k - 0.5) * 0.4, q[col, others].numpy(),
                    height=0.4, color=color)
        ax.set_yticks(np.arange(len(others)))
        ax.set_yticklabels([names[k] for k in others], fontsize=5)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=6)
        ax.set_title(f'{shown}: NCKD {float(terms.nckd[col]):.3g}', fontsize=TITLE_FS)
    axes[1, 0].legend(fontsize=6)
    pic.save(fig, out_dir, '11_dkd.png')
    pic.numbers.update(grid=[3, num], panel_in=PANEL_IN, rois=boxes.tolist(),
                       labels=labels.tolist(), tckd=terms.tckd.tolist(),
                       nckd=terms.nckd.tolist(), loss=float(total))
    pic.values.update(loss=loss, logits_S=logits_S, logits_T=logits_T, labels=labels,
                      terms=terms, total=total)
    return pic
