"""LD's valuable localisation region against a per-GT / per-anchor re-computation.

Reference: HikariTJU/LD ``atss_assigner.get_vlr_region`` (L183-298): alpha_pos = mean + std
(unbiased) of the IoUs of the topk centre-nearest anchors per level; VLR = gamma * alpha_pos
<= DIoU < alpha_pos over all anchors; value = IoU with the best qualifying GT.
"""
import math

import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.utils import vlr_region


def grid_anchors(sizes, strides, scale=8):
    """GFL-style anchors: one square box of side scale*stride per location, levels stacked."""
    anchors, counts = [], []
    for (h, w), s in zip(sizes, strides):
        for y in range(h):
            for x in range(w):
                cx, cy, half = x * s, y * s, scale * s / 2
                anchors.append([cx - half, cy - half, cx + half, cy + half])
        counts.append(h * w)
    return torch.tensor(anchors, dtype=torch.float32), counts


def iou_py(a, b):
    iw = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-6)


def diou_py(a, b):
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2)**2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2)**2
    c2 = (max(a[2], b[2]) - min(a[0], b[0]))**2 + (max(a[3], b[3]) - min(a[1], b[1]))**2
    return iou_py(a, b) - rho2 / max(c2, 1e-6)


def reference_vlr(anchors, counts, gts, topk=9, gamma=0.25):
    anchors, gts = anchors.double().tolist(), gts.double().tolist()
    value = [0.0] * len(anchors)
    for g in gts:
        gcx, gcy = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
        cand, start = [], 0
        for n in counts:
            idx = list(range(start, start + n))
            idx.sort(key=lambda i: math.hypot((anchors[i][0] + anchors[i][2]) / 2 - gcx,
                                              (anchors[i][1] + anchors[i][3]) / 2 - gcy))
            cand += idx[:topk]
            start += n
        ious = [iou_py(anchors[i], g) for i in cand]
        mean = sum(ious) / len(ious)
        std = math.sqrt(sum((v - mean)**2 for v in ious) / (len(ious) - 1))
        alpha_pos = mean + std
        for i, a in enumerate(anchors):
            d = diou_py(a, g)
            if gamma * alpha_pos <= d < alpha_pos:
                value[i] = max(value[i], iou_py(a, g))
    return torch.tensor(value, dtype=torch.float64)


def random_gts(gen, num, img=128.):
    xy = torch.rand(num, 2, generator=gen) * img * 0.7
    wh = torch.rand(num, 2, generator=gen) * img * 0.5 + 6.
    return torch.cat([xy, (xy + wh).clamp(max=img)], dim=1)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_vlr_matches_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    anchors, counts = grid_anchors([(16, 16), (8, 8), (4, 4)], [8, 16, 32])
    gts = random_gts(gen, 4)
    ours = vlr_region(anchors, counts, gts)
    ref = reference_vlr(anchors, counts, gts)
    assert ours.dtype == torch.float32 and ours.shape == (anchors.shape[0], )
    assert (ours > 0).sum() > 0
    assert torch.equal(ours > 0, ref > 0)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-7)


def test_vlr_topk_and_gamma_are_used():
    gen = torch.Generator().manual_seed(3)
    anchors, counts = grid_anchors([(12, 12), (6, 6)], [8, 16])
    gts = random_gts(gen, 3, img=96.)
    for topk, gamma in [(4, 0.25), (20, 0.5), (200, 0.1)]:  # 200 > every level: min(topk, n)
        ours = vlr_region(anchors, counts, gts, topk=topk, gamma=gamma)
        ref = reference_vlr(anchors, counts, gts, topk=topk, gamma=gamma)
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-7)


def test_vlr_official_semantics():
    """Positives are not excluded and centres outside the GT are allowed (as officially)."""
    anchors, counts = grid_anchors([(16, 16), (8, 8)], [8, 16])
    gt = torch.tensor([[30.3, 41.7, 90.1, 100.9]])
    ours = vlr_region(anchors, counts, gt)
    in_vlr = ours > 0
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    inside = (centres[:, 0] > gt[0, 0]) & (centres[:, 0] < gt[0, 2]) & \
        (centres[:, 1] > gt[0, 1]) & (centres[:, 1] < gt[0, 3])
    assert (in_vlr & ~inside).any(), 'anchors with centres outside the GT belong to the VLR'
    # an anchor with IoU >= alpha_pos (an ATSS-positive candidate) but DIoU < alpha_pos stays in
    ious = torch.tensor([iou_py(a, gt[0].tolist()) for a in anchors.tolist()])
    dist = ((centres - (gt[:, :2] + gt[:, 2:]) / 2)**2).sum(1)
    cand = torch.cat([dist[:256].topk(9, largest=False)[1],
                      dist[256:].topk(9, largest=False)[1] + 256])
    ref_alpha = ious[cand].mean() + ious[cand].std()
    assert (in_vlr & (ious >= ref_alpha)).any()
    torch.testing.assert_close(ours[in_vlr], ious[in_vlr].float())  # the value is the plain IoU


def test_vlr_no_gt_and_degenerate_inputs():
    anchors, counts = grid_anchors([(4, 4)], [8])
    out = vlr_region(anchors, counts, torch.zeros(0, 4))
    assert out.shape == (16, ) and (out == 0).all()
    out = vlr_region(torch.zeros(0, 4), [0], torch.tensor([[0., 0., 10., 10.]]))
    assert out.shape == (0, )
    # a single candidate in total: the official std is NaN -> empty VLR
    one, cnt = grid_anchors([(1, 1)], [8])
    assert (vlr_region(one, cnt, torch.tensor([[-10., -10., 12., 12.]])) == 0).all()
    with pytest.raises(ValueError, match='num_level_anchors'):
        vlr_region(anchors, [10], torch.tensor([[0., 0., 10., 10.]]))


def test_vlr_half_precision_inputs():
    gen = torch.Generator().manual_seed(5)
    anchors, counts = grid_anchors([(8, 8), (4, 4)], [8, 16])
    gts = random_gts(gen, 2, img=64.)
    ours = vlr_region(anchors.half(), counts, gts.half())
    assert ours.dtype == torch.float32
    ref = vlr_region(anchors.half().float(), counts, gts.half().float())
    assert torch.equal(ours, ref)
