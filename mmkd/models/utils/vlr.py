"""LD's valuable localisation region (VLR).

Zheng et al., Localization Distillation for Dense Object Detection, CVPR 2022,
https://arxiv.org/abs/2102.12252. Official: HikariTJU/LD
``mmdet/core/bbox/assigners/atss_assigner.py`` ``get_vlr_region`` (L183-298; the same code is
named ``assign_neg`` in older snapshots) with the DIoU of
``mmdet/core/bbox/iou_calculators/iou2d_calculator.py`` ``bbox_overlaps(mode='diou')``.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

_EPS = 1e-6  # the official bbox_overlaps eps (union and enclosing diagonal floor)


def _as_tensor(boxes) -> Tensor:
    """Accept plain tensors and mmdet box wrappers (``HorizontalBoxes.tensor``)."""
    return getattr(boxes, 'tensor', boxes)


def iou_and_diou(boxes1: Tensor, boxes2: Tensor, eps: float = _EPS) -> Tuple[Tensor, Tensor]:
    r"""Pairwise IoU and DIoU (M x N) with the official numerics.

    ``IoU = inter / max(union, eps)``; ``DIoU = IoU - rho^2 / max(c^2, eps)`` with ``rho`` the
    centre distance and ``c`` the diagonal of the smallest enclosing box.
    """
    b1, b2 = boxes1[:, None, :], boxes2[None, :, :]
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(b1[..., :2], b2[..., :2])
    rb = torch.min(b1[..., 2:], b2[..., 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    eps_t = overlap.new_tensor([eps])
    union = torch.max(area1[:, None] + area2[None, :] - overlap, eps_t)
    iou = overlap / union
    rho2 = ((b2[..., 0] + b2[..., 2]) - (b1[..., 0] + b1[..., 2]))**2 / 4 + \
        ((b2[..., 1] + b2[..., 3]) - (b1[..., 1] + b1[..., 3]))**2 / 4
    enclose_wh = (torch.max(b1[..., 2:], b2[..., 2:]) -
                  torch.min(b1[..., :2], b2[..., :2])).clamp(min=0)
    enclose_c = torch.max(enclose_wh[..., 0]**2 + enclose_wh[..., 1]**2, eps_t)
    return iou, iou - rho2 / enclose_c


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

    .. math:: \gamma\,\alpha_{pos}(g) \le \mathrm{DIoU}(a, g) < \alpha_{pos}(g).

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

    iou, diou = iou_and_diou(anchors, gt_bboxes)

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
