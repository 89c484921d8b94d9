"""LD's valuable localisation region (VLR).

Zheng et al., Localization Distillation for Dense Object Detection, CVPR 2022,
https://arxiv.org/abs/2102.12252. Official: HikariTJU/LD (line numbers at commit 4287990c)
``mmdet/core/bbox/assigners/atss_assigner.py`` ``get_vlr_region`` (L183-298; the same code is
named ``assign_neg`` in older snapshots) with the "DIoU" of that fork's
``mmdet/core/bbox/iou_calculators/iou2d_calculator.py`` ``bbox_overlaps(mode='diou')``
(L43-188), which is not the DIoU of the paper (see :func:`iou_and_ld_diou`).
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

_EPS = 1e-6  # the official bbox_overlaps eps (union and enclosing diagonal floor)


def _as_tensor(boxes) -> Tensor:
    """Accept plain tensors and mmdet box wrappers (``HorizontalBoxes.tensor``)."""
    return getattr(boxes, 'tensor', boxes)


def iou_and_ld_diou(anchors: Tensor, gt_bboxes: Tensor,
                    eps: float = _EPS) -> Tuple[Tensor, Tensor]:
    r"""Pairwise IoU and LD's "DIoU" (A x G), both as the official code computes them.

    ``IoU = inter / max(area_a + area_g - inter, eps)`` (``get_vlr_region`` L196, mode 'iou').
    The "DIoU" (L197, ``mode='diou'``) divides the intersection by the **anchor's** area, not
    by the union, because the fork's ``bbox_overlaps`` keeps the union only for 'iou' and
    'giou' (``iou2d_calculator.py`` L146-149)::

        if mode in ['iou', 'giou']:
            union = area1[..., None] + area2[..., None, :] - overlap
        else:
            union = area1[..., None]

    and then (L165-168, L181-187) ``union = max(union, eps)``, ``ious = overlap / union``,
    ``rho2`` = squared centre distance, ``enclose_c = max(c^2, eps)`` with ``c`` the diagonal of
    the smallest enclosing box, ``dious = ious - rho2 / enclose_c``. So

    .. math:: \mathrm{DIoU}_{LD}(a, g) = \frac{|a \cap g|}{\max(|a|, \epsilon)}
              - \frac{\rho^2(a, g)}{\max(c^2(a, g), \epsilon)}, \qquad \epsilon = 10^{-6}

    Since :math:`|a| \le |a \cup g|` it is never below the paper's DIoU, and equals it only
    when the GT lies inside the anchor; it is far higher where the GT covers much of the anchor
    (an anchor inside a large GT scores 1 minus the penalty, where the paper's DIoU gives
    :math:`|a|/|g|` minus it), so such anchors reach ``alpha_pos`` and leave the region.
    """
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    area_g = (gt_bboxes[:, 2] - gt_bboxes[:, 0]) * (gt_bboxes[:, 3] - gt_bboxes[:, 1])
    a, g = anchors[:, None, :], gt_bboxes[None, :, :]
    wh = (torch.min(a[..., 2:], g[..., 2:]) - torch.max(a[..., :2], g[..., :2])).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    eps_t = overlap.new_tensor([eps])
    iou = overlap / torch.max(area_a[:, None] + area_g[None, :] - overlap, eps_t)
    inter_over_anchor = overlap / torch.max(area_a[:, None], eps_t)
    rho2 = ((g[..., 0] + g[..., 2]) - (a[..., 0] + a[..., 2]))**2 / 4 + \
        ((g[..., 1] + g[..., 3]) - (a[..., 1] + a[..., 3]))**2 / 4
    enclose_wh = (torch.max(a[..., 2:], g[..., 2:]) -
                  torch.min(a[..., :2], g[..., :2])).clamp(min=0)
    enclose_c = torch.max(enclose_wh[..., 0]**2 + enclose_wh[..., 1]**2, eps_t)
    return iou, inter_over_anchor - rho2 / enclose_c


@torch.no_grad()
def vlr_region(anchors: Tensor,
               num_level_anchors: Sequence[int],
               gt_bboxes: Tensor,
               topk: int = 9,
               gamma: float = 0.25) -> Tensor:
    r"""Valuable localisation region of one image.

    For every GT box g, :math:`\alpha_{pos}(g)` is ATSS's IoU threshold: mean + std (unbiased,
    ``torch.std``) of the IoUs between g and its ``topk`` centre-nearest anchors on every
    level (``min(topk, n_l)`` per level, all levels pooled). An anchor a is in g's VLR when

    .. math:: \gamma\,\alpha_{pos}(g) \le \mathrm{DIoU}_{LD}(a, g) < \alpha_{pos}(g)

    with LD's "DIoU" (:func:`iou_and_ld_diou`: intersection over the anchor's area minus the
    centre penalty), as the official code; ``alpha_pos`` and the returned values are plain IoU.

    Candidates are all anchors of every level; ATSS positives are not excluded and the anchor
    centre need not lie inside g (the official ``is_in_gts`` filter is commented out). The
    returned value of an anchor is its plain IoU with the best g among those whose VLR holds
    it, 0 elsewhere; LD uses it as the VLR-LD weight.

    Deliberate differences: ``gt_bboxes_ignore`` is not supported (the official path only uses
    it with ``ignore_iof_thr > 0``; GFL configs use -1). With a single candidate anchor in total
    the official std is NaN and the VLR empty; here it is empty without the NaN warning.

    Args:
        anchors (Tensor): (A, 4) x1y1x2y2 anchors of one image, levels concatenated.
        num_level_anchors (Sequence[int]): Number of anchors of each level (sums to A).
        gt_bboxes (Tensor): (G, 4) x1y1x2y2 GT boxes (mmdet box wrappers accepted).
        topk (int): Anchors per level used for alpha_pos (the ATSS ``topk``). Defaults to 9.
        gamma (float): alpha_vl / alpha_pos. Defaults to 0.25 (hard-coded officially).

    Returns:
        Tensor: (A,) float32, IoU with the best qualifying GT, 0 outside the VLR.
    """
    anchors = _as_tensor(anchors)[:, :4].float()
    gt_bboxes = _as_tensor(gt_bboxes)[:, :4].float().to(anchors.device)
    num_anchors, num_gt = anchors.size(0), gt_bboxes.size(0)
    if sum(num_level_anchors) != num_anchors:
        raise ValueError(f'num_level_anchors {list(num_level_anchors)} sums to '
                         f'{sum(num_level_anchors)} but {num_anchors} anchors were given; pass '
                         'the per-level counts of exactly these anchors.')
    region = anchors.new_zeros(num_anchors)
    if num_gt == 0 or num_anchors == 0:
        return region

    iou, diou = iou_and_ld_diou(anchors, gt_bboxes)

    # centre distances (A, G), as the ATSS assigner
    anchor_ctr = (anchors[:, :2] + anchors[:, 2:]) / 2.0
    gt_ctr = (gt_bboxes[:, :2] + gt_bboxes[:, 2:]) / 2.0
    distances = (anchor_ctr[:, None, :] - gt_ctr[None, :, :]).pow(2).sum(-1).sqrt()

    candidate_idxs = []
    start = 0
    for n in num_level_anchors:
        k = min(topk, n)
        if k > 0:
            _, idx = distances[start:start + n].topk(k, dim=0, largest=False)
            candidate_idxs.append(idx + start)
        start += n
    candidate_idxs = torch.cat(candidate_idxs, dim=0)  # (K, G)
    if candidate_idxs.size(0) < 2:
        return region  # official: std of one value is NaN -> empty VLR
    candidate_ious = iou.gather(0, candidate_idxs)
    alpha_pos = candidate_ious.mean(0) + candidate_ious.std(0)  # (G,)

    in_vlr = (diou >= gamma * alpha_pos[None, :]) & (diou < alpha_pos[None, :])
    best_iou = torch.where(in_vlr, iou, iou.new_full((), -float('inf'))).max(dim=1)[0]
    has_gt = in_vlr.any(dim=1)
    region[has_gt] = best_iou[has_gt]
    return region
