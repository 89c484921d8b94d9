"""LD's valuable localisation region against a line-by-line re-computation of the official code.

Reference (``tests/oracles.py``: ``vlr_oracle``, ``ld_bbox_overlaps_oracle``): HikariTJU/LD
``atss_assigner.get_vlr_region`` (L183-298) with that fork's ``bbox_overlaps`` (L43-188):
alpha_pos = mean + std (unbiased) of the IoUs of the topk centre-nearest anchors per level; VLR =
gamma * alpha_pos <= "DIoU" < alpha_pos over all anchors, where the fork's "DIoU" is the
intersection over the *anchor's* area minus rho^2 / c^2; value = IoU with the best qualifying GT.
"""
import pytest
import torch

import mmkd  # noqa: F401
from mmkd.models.utils import vlr_region
from mmkd.models.utils.vlr import iou_and_ld_diou
from oracles import ld_bbox_overlaps_oracle, vlr_oracle


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


def random_gts(gen, num, img=128.):
    xy = torch.rand(num, 2, generator=gen) * img * 0.7
    wh = torch.rand(num, 2, generator=gen) * img * 0.5 + 6.
    return torch.cat([xy, (xy + wh).clamp(max=img)], dim=1)


def check_against_official(anchors, counts, gts, **kw):
    ours = vlr_region(anchors, counts, gts, **kw)
    ref = vlr_oracle(anchors, counts, gts, **kw)
    assert ours.dtype == torch.float32 and ours.shape == (anchors.shape[0], )
    assert torch.equal(ours > 0, ref > 0), 'the region differs from the official one'
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-7)
    return ours, ref


# GFL anchors (side 8 * stride) of a 128 x 128 image on three levels
LEVELS = dict(sizes=[(16, 16), (8, 8), (4, 4)], strides=[8, 16, 32])


def test_ld_diou_divides_the_intersection_by_the_anchor_area():
    """Pairwise values of the fork's ``bbox_overlaps(mode='iou' / 'diou')``, eps included."""
    anchors = torch.tensor([
        [0., 0., 64., 64.],  # a GT inside it: the fork's DIoU is the paper's
        [55., 50., 65., 60.],  # inside the large GT: 1 - penalty, the paper's |a|/|g| - penalty
        [40., 30., 104., 94.],  # partial overlap
        [200., 200., 210., 210.],  # disjoint: negative
        [5., 5., 5., 5.],  # zero area: union floored at eps, c^2 too against itself
    ], dtype=torch.float64)
    gts = torch.tensor([[8.5, 6.25, 30.75, 40.], [2., 3., 120., 110.], [5., 5., 5., 5.]],
                       dtype=torch.float64)
    iou, diou = iou_and_ld_diou(anchors, gts)
    for i, a in enumerate(anchors.tolist()):
        for j, g in enumerate(gts.tolist()):
            assert iou[i, j].item() == pytest.approx(ld_bbox_overlaps_oracle(a, g, 'iou'),
                                                     rel=1e-12, abs=1e-12)
            assert diou[i, j].item() == pytest.approx(ld_bbox_overlaps_oracle(a, g, 'diou'),
                                                      rel=1e-12, abs=1e-12)
    # the anchor inside the large GT: intersection / anchor area = 1, far above the IoU
    assert diou[1, 1] > 0.95 and iou[1, 1] < 0.01


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_vlr_matches_official_on_random_boxes(seed):
    gen = torch.Generator().manual_seed(seed)
    anchors, counts = grid_anchors(LEVELS['sizes'], LEVELS['strides'])
    ours, _ = check_against_official(anchors, counts, random_gts(gen, 4))
    assert (ours > 0).sum() > 0


@pytest.mark.parametrize('gts', [
    # far larger than the anchors of the finest level (side 64): 117 x 112 on a 128 image
    [[5.3, 7.1, 121.7, 118.9]],
    # far smaller than every anchor: 6.7 x 7.4 and 3.1 x 12.6
    [[60.2, 50.7, 66.9, 58.1], [20.4, 90.3, 23.5, 102.9]],
    # both in one image
    [[5.3, 7.1, 121.7, 118.9], [60.2, 50.7, 66.9, 58.1]],
])
def test_vlr_matches_official_for_gts_far_larger_and_far_smaller_than_anchors(gts):
    anchors, counts = grid_anchors(LEVELS['sizes'], LEVELS['strides'])
    gts = torch.tensor(gts)
    ours, ref = check_against_official(anchors, counts, gts)
    assert (ours > 0).sum() > 0


def test_vlr_is_not_the_region_of_the_paper_diou():
    """On a large GT the fork's DIoU (intersection over the anchor's area) puts the anchors the
    GT covers above alpha_pos, out of the region, where the paper's DIoU keeps them: a region
    built on the paper's DIoU (as mmkd did before) fails ``check_against_official`` here."""
    anchors, counts = grid_anchors(LEVELS['sizes'], LEVELS['strides'])
    gts = torch.tensor([[5.3, 7.1, 121.7, 118.9]])
    ours, ref = check_against_official(anchors, counts, gts)
    paper = vlr_oracle(anchors, counts, gts, paper_diou=True)
    assert not torch.equal(paper > 0, ref > 0)
    covered = (paper > 0) & ~(ref > 0)  # in the paper-DIoU region, not in the official one
    assert covered.sum() >= 10


def test_vlr_topk_and_gamma_are_used():
    gen = torch.Generator().manual_seed(3)
    anchors, counts = grid_anchors([(12, 12), (6, 6)], [8, 16])
    gts = random_gts(gen, 3, img=96.)
    for topk, gamma in [(4, 0.25), (20, 0.5), (200, 0.1)]:  # 200 > every level: min(topk, n)
        check_against_official(anchors, counts, gts, topk=topk, gamma=gamma)


def test_vlr_official_semantics():
    """Positives are not excluded and centres outside the GT are allowed (as officially)."""
    anchors, counts = grid_anchors([(16, 16), (8, 8)], [8, 16])
    gt = torch.tensor([[30.3, 41.7, 90.1, 100.9]])
    ours, _ = check_against_official(anchors, counts, gt)
    in_vlr = ours > 0
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    inside = (centres[:, 0] > gt[0, 0]) & (centres[:, 0] < gt[0, 2]) & \
        (centres[:, 1] > gt[0, 1]) & (centres[:, 1] < gt[0, 3])
    assert (in_vlr & ~inside).any(), 'anchors with centres outside the GT belong to the VLR'
    ious = torch.tensor([ld_bbox_overlaps_oracle(a, gt[0].tolist(), 'iou')
                         for a in anchors.tolist()])
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
