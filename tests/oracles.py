"""Plain re-computations of the distillation formulas, written like the official code.

Used by ``tests/test_loss_*.py`` and ``tools/benchmark_losses.py`` as the reference the mmkd
losses are checked (values and gradients) and timed against. Everything here loops per image
and per box, as the official implementations do, and never calls mmkd helpers: the only thing
taken from an mmkd module is its parameters (passed in as tensors). Each function names the
official file it follows and the deliberate mmkd difference it encodes (if any).
"""
import math
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _boxes(inst) -> Tensor:
    boxes = getattr(inst, 'bboxes', inst)
    return getattr(boxes, 'tensor', boxes)


# --------------------------------------------------------------------------------------- CWD
def cwd_oracle(preds_S: Tensor, preds_T: Tensor, tau: float = 1.0, loss_weight: float = 1.0,
               form: str = 'kl') -> Tensor:
    """mmrazor ``losses/cwd.py`` L25-51 (kl) / mmdetection-distiller ``cwd.py`` L42-55 (ce)."""
    N, C, H, W = preds_S.shape
    softmax_pred_T = F.softmax(preds_T.reshape(-1, W * H) / tau, dim=1)
    logsoftmax = torch.nn.LogSoftmax(dim=1)
    if form == 'kl':
        loss = torch.sum(softmax_pred_T * logsoftmax(preds_T.reshape(-1, W * H) / tau) -
                         softmax_pred_T * logsoftmax(preds_S.reshape(-1, W * H) / tau)) * tau**2
    else:
        loss = torch.sum(-softmax_pred_T * logsoftmax(preds_S.reshape(-1, W * H) / tau)) * tau**2
    return loss_weight * loss / (C * N)


# --------------------------------------------------------------------------------------- FGD
def gcblock_oracle(x: Tensor, p: Dict[str, Tensor]) -> Tensor:
    """FGD ``spatial_pool`` + ``channel_add_conv`` (fgd.py L170-213) with given parameters.

    ``p`` holds ``conv_mask.weight/bias``, ``channel_add_conv.{0,1,3}.weight/bias``
    (the keys of ``GcBlock.state_dict()``).
    """
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = F.conv2d(x, p['conv_mask.weight'], p['conv_mask.bias'])
    context_mask = F.softmax(context_mask.view(batch, 1, height * width), dim=2).unsqueeze(-1)
    context = torch.matmul(input_x, context_mask).view(batch, channel, 1, 1)
    y = F.conv2d(context, p['channel_add_conv.0.weight'], p['channel_add_conv.0.bias'])
    y = F.layer_norm(y, y.shape[1:], p['channel_add_conv.1.weight'], p['channel_add_conv.1.bias'])
    y = F.relu(y)
    y = F.conv2d(y, p['channel_add_conv.3.weight'], p['channel_add_conv.3.bias'])
    return x + y


def fgd_attention_oracle(preds: Tensor, temp: float):
    """fgd.py L120-133."""
    N, C, H, W = preds.shape
    value = torch.abs(preds)
    fea_map = value.mean(axis=1, keepdim=True)
    S_attention = (H * W * F.softmax((fea_map / temp).view(N, -1), dim=1)).view(N, H, W)
    channel_map = value.mean(axis=2, keepdim=False).mean(axis=2, keepdim=False)
    C_attention = C * F.softmax(channel_map / temp, dim=1)
    return S_attention, C_attention


def fgd_masks_oracle(gt_bboxes: Sequence[Tensor], img_metas: Sequence[dict], N: int, H: int,
                     W: int, shape_key: str = 'img_shape'):
    """fgd.py L83-106 (current master: rows = h range, cols = w range), one box at a time.

    mmkd difference encoded here: a slice start below 0 is cut at 0 and a slice end <= 0 fills
    nothing (Python would count negative indices from the far end).
    """
    Mask_fg = torch.zeros(N, H, W)
    Mask_bg = torch.ones(N, H, W)
    for i in range(N):
        boxes = gt_bboxes[i].float()
        img_h, img_w = img_metas[i][shape_key][0], img_metas[i][shape_key][1]
        new_boxxes = torch.ones_like(boxes)
        new_boxxes[:, 0] = boxes[:, 0] / img_w * W
        new_boxxes[:, 2] = boxes[:, 2] / img_w * W
        new_boxxes[:, 1] = boxes[:, 1] / img_h * H
        new_boxxes[:, 3] = boxes[:, 3] / img_h * H
        wmin = torch.floor(new_boxxes[:, 0]).int()
        wmax = torch.ceil(new_boxxes[:, 2]).int()
        hmin = torch.floor(new_boxxes[:, 1]).int()
        hmax = torch.ceil(new_boxxes[:, 3]).int()
        area = 1.0 / (hmax.view(1, -1) + 1 - hmin.view(1, -1)) / \
            (wmax.view(1, -1) + 1 - wmin.view(1, -1))
        for j in range(len(boxes)):
            h0, h1 = max(int(hmin[j]), 0), max(int(hmax[j]) + 1, 0)
            w0, w1 = max(int(wmin[j]), 0), max(int(wmax[j]) + 1, 0)
            Mask_fg[i][h0:h1, w0:w1] = torch.maximum(Mask_fg[i][h0:h1, w0:w1], area[0][j])
        Mask_bg[i] = torch.where(Mask_fg[i] > 0, 0, 1)
        if torch.sum(Mask_bg[i]):
            Mask_bg[i] /= torch.sum(Mask_bg[i])
    return Mask_fg, Mask_bg


def fgd_oracle(preds_S: Tensor, preds_T: Tensor, gt_bboxes: Sequence, img_metas: Sequence[dict],
               params: Dict[str, Tensor], temp: float = 0.5, alpha: float = 1e-3,
               beta: float = 5e-4, gamma: float = 1e-3, lam: float = 5e-6,
               box_scale: str = 'padded') -> Dict[str, Tensor]:
    """yzd-v/FGD ``FeatureLoss.forward`` (fgd.py L58-117) with the terms returned separately.

    ``params``: ``FGDLoss.state_dict()``-style tensors (``align.*`` optional, ``gc_s.*``,
    ``gc_t.*``). ``box_scale='padded'`` scales boxes by ``batch_input_shape``.
    """
    gt_bboxes = [_boxes(b) for b in gt_bboxes]
    if 'align.weight' in params:
        preds_S = F.conv2d(preds_S, params['align.weight'], params['align.bias'])
    N, C, H, W = preds_S.shape
    S_attention_t, C_attention_t = fgd_attention_oracle(preds_T, temp)
    S_attention_s, C_attention_s = fgd_attention_oracle(preds_S, temp)
    key = 'batch_input_shape' if box_scale == 'padded' else 'img_shape'
    Mask_fg, Mask_bg = fgd_masks_oracle(gt_bboxes, img_metas, N, H, W, key)

    # get_fea_loss, L136-160
    loss_mse = torch.nn.MSELoss(reduction='sum')
    Mask_fg, Mask_bg = Mask_fg.unsqueeze(dim=1), Mask_bg.unsqueeze(dim=1)
    C_t = C_attention_t.unsqueeze(dim=-1).unsqueeze(dim=-1)
    S_t = S_attention_t.unsqueeze(dim=1)
    fea_t = torch.mul(torch.mul(preds_T, torch.sqrt(S_t)), torch.sqrt(C_t))
    fg_fea_t = torch.mul(fea_t, torch.sqrt(Mask_fg))
    bg_fea_t = torch.mul(fea_t, torch.sqrt(Mask_bg))
    fea_s = torch.mul(torch.mul(preds_S, torch.sqrt(S_t)), torch.sqrt(C_t))
    fg_fea_s = torch.mul(fea_s, torch.sqrt(Mask_fg))
    bg_fea_s = torch.mul(fea_s, torch.sqrt(Mask_bg))
    fg_loss = loss_mse(fg_fea_s, fg_fea_t) / len(Mask_fg)
    bg_loss = loss_mse(bg_fea_s, bg_fea_t) / len(Mask_bg)

    # get_mask_loss, L163-167
    mask_loss = torch.sum(torch.abs(C_attention_s - C_attention_t)) / len(C_attention_s) + \
        torch.sum(torch.abs(S_attention_s - S_attention_t)) / len(S_attention_s)

    # get_rela_loss, L197-213
    gc_s = {k[len('gc_s.'):]: v for k, v in params.items() if k.startswith('gc_s.')}
    gc_t = {k[len('gc_t.'):]: v for k, v in params.items() if k.startswith('gc_t.')}
    rela_loss = loss_mse(gcblock_oracle(preds_S, gc_s), gcblock_oracle(preds_T, gc_t)) / N

    return {
        'fg': alpha * fg_loss,
        'bg': beta * bg_loss,
        'mask': gamma * mask_loss,
        'global': lam * rela_loss
    }


# --------------------------------------------------------------------------------------- MGD
def mgd_oracle(preds_S: Tensor, preds_T: Tensor, mat: Tensor, params: Dict[str, Tensor],
               alpha_mgd: float = 2e-5) -> Tensor:
    """yzd-v/MGD det ``mgd.py`` L48-71 with the 0/1 keep-mask ``mat`` given.

    ``params``: ``MGDConnector.state_dict()`` tensors (``align.*`` optional, ``generation.*``).
    """
    if 'align.weight' in params:
        preds_S = F.conv2d(preds_S, params['align.weight'], params['align.bias'])
    N, C, H, W = preds_T.shape
    masked_fea = torch.mul(preds_S, mat)
    x = F.conv2d(masked_fea, params['generation.0.weight'], params['generation.0.bias'], padding=1)
    x = F.relu(x)
    new_fea = F.conv2d(x, params['generation.2.weight'], params['generation.2.bias'], padding=1)
    dis_loss = torch.nn.MSELoss(reduction='sum')(new_fea, preds_T) / N
    return dis_loss * alpha_mgd


# ------------------------------------------------------------------------------------ DeFeat
def defeat_masks_oracle(gt_bboxes: Sequence[Tensor], featmap_sizes, strides,
                        finest_scale: float = 56.) -> List[Tensor]:
    """DeFeat ``anchor_head.py`` ``_map_roi_levels`` L168-173 + ``get_gt_mask`` L262-297.

    mmkd differences encoded here: the single pixel of a degenerate box is skipped when it is
    outside the map (official: IndexError); a negative slice end fills nothing.
    """
    mask_batch = []
    for batch in range(len(gt_bboxes)):
        boxes = gt_bboxes[batch].float()
        scale = torch.sqrt((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1))
        target_lvls = torch.floor(torch.log2(scale / finest_scale + 1e-6))
        target_lvls = target_lvls.clamp(min=0, max=len(featmap_sizes) - 1).long()
        mask_level = []
        for level in range(len(featmap_sizes)):
            gt_level = boxes[target_lvls == level]
            h, w = int(featmap_sizes[level][0]), int(featmap_sizes[level][1])
            mask_per_img = torch.zeros([h, w], dtype=torch.double)
            for ins in range(gt_level.shape[0]):
                gt_level_map = gt_level[ins] / strides[level]
                lx = max(int(gt_level_map[0]), 0)
                rx = min(int(gt_level_map[2]), w)
                ly = max(int(gt_level_map[1]), 0)
                ry = min(int(gt_level_map[3]), h)
                if (lx == rx) or (ly == ry):
                    if ly < h and lx < w:
                        mask_per_img[ly, lx] += 1
                else:
                    mask_per_img[ly:max(ry, 0), lx:max(rx, 0)] += 1
            mask_level.append((mask_per_img > 0).double())
        mask_batch.append(mask_level)
    return [torch.stack([mask_batch[b][lvl] for b in range(len(mask_batch))])
            for lvl in range(len(featmap_sizes))]


def defeat_oracle(neck_feat: Sequence[Tensor], neck_feat_t: Sequence[Tensor], gt_bboxes,
                  params: Dict[str, Tensor], strides=(4, 8, 16, 32, 64), hint_neck_w: float = 3.,
                  hint_neck_back_w: float = 12.) -> Dict[str, Tensor]:
    """DeFeat ``apis/train.py`` L299-347 (neck-adapt, neck-decouple, pixel-wise).

    ``params``: adapter tensors ``adapt.convs.{i}.weight/bias`` (omit for no adaptation).
    """
    gt_bboxes = [_boxes(b) for b in gt_bboxes]
    neck_mask_batch = defeat_masks_oracle(gt_bboxes, [f.shape[-2:] for f in neck_feat], strides)
    losskd_neck = torch.zeros(1)
    losskd_neck_back = torch.zeros(1)
    for i, _neck_feat in enumerate(neck_feat):
        mask_hint = neck_mask_batch[i].float()
        mask_hint = mask_hint.unsqueeze(1).repeat(1, neck_feat_t[i].size(1), 1, 1)
        norms = max(1.0, mask_hint.double().sum().item() * 2)
        if f'adapt.convs.{i}.weight' in params:
            neck_feat_adapt = F.conv2d(_neck_feat, params[f'adapt.convs.{i}.weight'],
                                       params[f'adapt.convs.{i}.bias'], padding=1)
        else:
            neck_feat_adapt = _neck_feat
        norms_back = max(1.0, (1 - mask_hint).double().sum().item() * 2)
        losskd_neck_back = losskd_neck_back + (torch.pow(neck_feat_adapt - neck_feat_t[i], 2) *
                                               (1 - mask_hint)).sum() / norms_back
        losskd_neck = losskd_neck + (torch.pow(neck_feat_adapt - neck_feat_t[i], 2) *
                                     mask_hint).sum() / norms
    losskd_neck = losskd_neck / len(neck_feat) * hint_neck_w
    losskd_neck_back = losskd_neck_back / len(neck_feat) * hint_neck_back_w
    return {'fg': losskd_neck[0], 'bg': losskd_neck_back[0]}


# ---------------------------------------------------------------------------------- ReviewKD
def abf_oracle(feats: Sequence[Tensor], params: Dict[str, Tensor]) -> List[Tensor]:
    """ReviewKD ``kd_trans.py`` L5-65 (ABF + review order) with given parameters.

    ``params``: ``ABFConnector.state_dict()`` tensors (``abfs.{i}.conv1.0.weight``, BN
    ``conv1.1.*``, ``conv2.{0,1}.*``, ``att_conv.0.*``). BN in training mode on copies of the
    running statistics.
    """
    def bn(x, prefix):
        return F.batch_norm(x, params[prefix + 'running_mean'].clone(),
                            params[prefix + 'running_var'].clone(), params[prefix + 'weight'],
                            params[prefix + 'bias'], training=True, momentum=0.1, eps=1e-5)

    def abf(i, x, y=None):
        n, _, h, w = x.shape
        p = f'abfs.{i}.'
        x = bn(F.conv2d(x, params[p + 'conv1.0.weight']), p + 'conv1.1.')
        if p + 'att_conv.0.weight' in params:
            y = F.interpolate(y, (h, w), mode='nearest')
            z = torch.cat([x, y], dim=1)
            z = torch.sigmoid(F.conv2d(z, params[p + 'att_conv.0.weight'],
                                       params[p + 'att_conv.0.bias']))
            x = (x * z[:, 0].view(n, 1, h, w) + y * z[:, 1].view(n, 1, h, w))
        y = bn(F.conv2d(x, params[p + 'conv2.0.weight'], padding=1), p + 'conv2.1.')
        return y, x

    L = len(feats)
    x = feats[::-1]
    results = []
    out_features, res_features = abf(L - 1, x[0])
    results.append(out_features)
    for k, features in enumerate(x[1:]):
        out_features, res_features = abf(L - 2 - k, features, res_features)
        results.insert(0, out_features)
    return results


def hcl_oracle(fstudent: Sequence[Tensor], fteacher: Sequence[Tensor],
               loss_weight: float = 1.0) -> Tensor:
    """ReviewKD ``kd_trans.py`` L75-92."""
    loss_all = 0.0
    for fs, ft in zip(fstudent, fteacher):
        n, c, h, w = fs.shape
        loss = F.mse_loss(fs, ft, reduction='mean')
        cnt = 1.0
        tot = 1.0
        for l in [4, 2, 1]:  # noqa: E741
            if l >= h:
                continue
            tmpfs = F.adaptive_avg_pool2d(fs, (l, l))
            tmpft = F.adaptive_avg_pool2d(ft, (l, l))
            cnt /= 2.0
            loss += F.mse_loss(tmpfs, tmpft, reduction='mean') * cnt
            tot += cnt
        loss = loss / tot
        loss_all = loss_all + loss
    return loss_all * loss_weight


# --------------------------------------------------------------------------------------- PKD
def pkd_oracle(s: Tensor, t: Tensor) -> float:
    """mmrazor ``losses/pkd_loss.py`` L31-83 for one level, per channel in float64: standardise
    over (N, H, W) with the unbiased std (+1e-6), then half the mean squared difference over
    every element."""
    s, t = s.detach().double(), t.detach().double()
    n, c, h, w = s.shape
    total = 0.0
    for ch in range(c):
        a, b = s[:, ch].reshape(-1), t[:, ch].reshape(-1)
        za = (a - a.mean()) / (a.std() + 1e-6)
        zb = (b - b.mean()) / (b.std() + 1e-6)
        total += float(((za - zb)**2).sum())
    return total / (n * c * h * w) / 2


# --------------------------------------------------------------------------------------- DKD
def dkd_oracle(S: Tensor, T: Tensor, labels: Tensor, tau: float, alpha: float,
               beta: float) -> Tensor:
    """mdistiller ``mdistiller/distillers/DKD.py`` L8-51, one RoI at a time: b = [p_gt,
    sum_{k != gt} p_k]; TCKD = KL(b_T || b_S); NCKD = KL over the non-target classes
    renormalised (the official code subtracts 1000 from the target logit, the same up to
    exp(-1000)); both * tau^2, summed over RoIs / #RoIs."""
    total = 0.
    for i in range(S.shape[0]):
        g = int(labels[i])
        pS, pT = torch.softmax(S[i] / tau, 0), torch.softmax(T[i].detach() / tau, 0)
        others = [k for k in range(S.shape[1]) if k != g]
        bS = torch.stack([pS[g], pS[others].sum()])
        bT = torch.stack([pT[g], pT[others].sum()])
        tckd = (bT * (bT.log() - bS.log())).sum()
        qS = torch.softmax(S[i, others] / tau, 0)
        qT = torch.softmax(T[i, others].detach() / tau, 0)
        nckd = (qT * (qT.log() - qS.log())).sum()
        total = total + (alpha * tckd + beta * nckd) * tau**2
    return total / S.shape[0]


# ------------------------------------------------------------------------------ DeFeat head
def defeat_head_oracle(S: Tensor, T: Tensor, labels: Tensor, tau: float, w_fg: float,
                       w_bg: float):
    """ggjy/DeFeat.pytorch ``mmdet/apis/train.py`` L88-103 (``KLDivergenceLoss``) with the
    ``KL-decouple`` branch L228-297: for fg RoIs (label < K) and bg RoIs (label == K, K = the
    last logit; mmkd's deliberate difference, officially ``labels.max()``) separately,
    sum KL(softmax(t/tau) || softmax(s/tau)) / #RoIs * tau^2; returns (fg, bg) weighted."""
    bg = S.shape[1] - 1
    sums, counts = {'fg': 0., 'bg': 0.}, {'fg': 0, 'bg': 0}
    for i in range(S.shape[0]):
        key = 'bg' if int(labels[i]) == bg else 'fg'
        pS = torch.log_softmax(S[i] / tau, 0)
        pT = torch.softmax(T[i].detach() / tau, 0)
        sums[key] = sums[key] + sum(pT[c] * (torch.log(pT[c]) - pS[c]) for c in range(S.shape[1]))
        counts[key] += 1
    fg = sums['fg'] / counts['fg'] * tau**2 if counts['fg'] else 0.
    bg = sums['bg'] / counts['bg'] * tau**2 if counts['bg'] else 0.
    return w_fg * fg, w_bg * bg


# ---------------------------------------------------------------------------------- KD / LD
#: mmdet 3.x ``weight_reduce_loss`` adds this to ``avg_factor``
EPS32 = torch.finfo(torch.float32).eps


def kd_row_oracle(s: Tensor, t: Tensor, tau: float, over: str = 'mean') -> Tensor:
    """HikariTJU/LD ``mmdet/models/losses/kd_loss.py`` L10-36 for one row, written out:
    tau^2 * mean_j pT_j (log pT_j - log pS_j), p = softmax(z / tau); ``over='sum'`` is the
    textbook KL (autograd-able, any float dtype)."""
    ps = [torch.exp(v / tau) for v in s]
    zs = sum(ps)
    log_ps = [torch.log(p / zs) for p in ps]
    pt = [torch.exp(v / tau) for v in t.detach()]
    zt = sum(pt)
    pt = [p / zt for p in pt]
    terms = [pt[j] * (torch.log(pt[j]) - log_ps[j]) for j in range(len(s))]
    total = sum(terms)
    return (total / len(s) if over == 'mean' else total) * tau * tau


def kd_oracle(S: Tensor, T: Tensor, tau: float, weight=None, avg_factor=None,
              over: str = 'mean') -> Tensor:
    """``kd_row_oracle`` per row, weighted, then mmdet's ``weight_reduce_loss``: mean over rows,
    or the sum / (avg_factor + float32 eps)."""
    rows = [kd_row_oracle(S[i], T[i], tau, over) * (1 if weight is None else weight[i])
            for i in range(S.shape[0])]
    total = sum(rows)
    return total / len(rows) if avg_factor is None else total / (avg_factor + EPS32)


# --------------------------------------------------------------------------------- LD's VLR
def ld_bbox_overlaps_oracle(a: Sequence[float], b: Sequence[float], mode: str,
                            eps: float = 1e-6) -> float:
    """HikariTJU/LD (4287990c) ``mmdet/core/bbox/iou_calculators/iou2d_calculator.py``
    ``bbox_overlaps`` L43-188 for one pair: ``union`` is the union for 'iou' and the area of
    ``a`` (the anchor) for every other mode, L146-149; ``max(union, eps)``, L165-166;
    'diou' = overlap / union - rho^2 / max(c^2, eps), L179-187."""
    area1 = (a[2] - a[0]) * (a[3] - a[1])
    area2 = (b[2] - b[0]) * (b[3] - b[1])
    overlap = max(0., min(a[2], b[2]) - max(a[0], b[0])) * max(0., min(a[3], b[3]) -
                                                               max(a[1], b[1]))
    union = area1 + area2 - overlap if mode == 'iou' else area1
    ious = overlap / max(union, eps)
    if mode == 'iou':
        return ious
    assert mode == 'diou', mode
    rho2 = ((b[0] + b[2]) - (a[0] + a[2]))**2 / 4 + ((b[1] + b[3]) - (a[1] + a[3]))**2 / 4
    enclose_w = max(0., max(a[2], b[2]) - min(a[0], b[0]))
    enclose_h = max(0., max(a[3], b[3]) - min(a[1], b[1]))
    return ious - rho2 / max(enclose_w**2 + enclose_h**2, eps)


def vlr_oracle(anchors: Tensor, counts: Sequence[int], gts: Tensor, topk: int = 9,
               gamma: float = 0.25, paper_diou: bool = False) -> Tensor:
    """HikariTJU/LD (4287990c) ``mmdet/core/bbox/assigners/atss_assigner.py``
    ``get_vlr_region`` L183-298, in float64 Python: per GT, the ``min(topk, n_l)`` centre-nearest
    anchors of every level give alpha_pos = mean + unbiased std of their IoUs (L254-269); every
    anchor of every level is a candidate (``selectable_k = bboxes_per_level``) and lies in the
    GT's region when ``gamma * alpha_pos <= diou < alpha_pos`` with the 'diou' of
    :func:`ld_bbox_overlaps_oracle` (L272-273); its value is the largest plain IoU over the GTs
    whose region holds it (L281-296), 0 outside every region.

    ``paper_diou=True`` puts the paper's DIoU (IoU minus the same penalty) in place of the
    official one; not a reference, only there to show that a test case tells the two apart."""
    anchors, gts = anchors.double().tolist(), gts.double().tolist()
    value = [0.0] * len(anchors)
    for g in gts:
        gcx, gcy = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
        near, start = [], 0
        for n in counts:
            idx = list(range(start, start + n))
            idx.sort(key=lambda i: math.hypot((anchors[i][0] + anchors[i][2]) / 2 - gcx,
                                              (anchors[i][1] + anchors[i][3]) / 2 - gcy))
            near += idx[:topk]
            start += n
        ious = [ld_bbox_overlaps_oracle(anchors[i], g, 'iou') for i in near]
        if len(ious) < 2:
            continue  # std of one value is NaN: no comparison holds
        mean = sum(ious) / len(ious)
        alpha_pos = mean + math.sqrt(sum((v - mean)**2 for v in ious) / (len(ious) - 1))
        for i, a in enumerate(anchors):
            diou = ld_bbox_overlaps_oracle(a, g, 'diou')
            if paper_diou:  # replace overlap / area(a) by the IoU
                area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
                inter = max(0., min(a[2], g[2]) - max(a[0], g[0])) * max(
                    0., min(a[3], g[3]) - max(a[1], g[1]))
                diou += ld_bbox_overlaps_oracle(a, g, 'iou') - inter / area_a
            if gamma * alpha_pos <= diou < alpha_pos:
                value[i] = max(value[i], ld_bbox_overlaps_oracle(a, g, 'iou'))
    return torch.tensor(value, dtype=torch.float64)


# ------------------------------------------------------------------------------- LD on GFL
def gfl_ld_oracle(preds_S, preds_T, gts, metas, strides: Sequence[int], reg_max: int,
                  tau_ld: float = 10., tau_kd: float = 2., w_ld: float = .25, w_kd: float = 10.,
                  w_vlr: float = .25) -> Dict[str, Tensor]:
    """HikariTJU/LD ``mmdet/models/dense_heads/ld_head.py`` ``loss_single`` L116-282 (weights
    L198-199, Main LD / KD L235-244, VLR LD L254-266), looping per level / image / anchor.

    GFL anchors (one square of side 8 * stride per location), valid inside each image's
    ``pad_shape``; assignment by mmdet's own ``ATSSAssigner`` (topk 9); VLR by
    :func:`vlr_oracle`. Main LD = w_ld * sum_pos sum_edges s_i kl_ie / (4 + eps), Main KD =
    w_kd * sum_pos kl_i / (#pos of the level + eps), VLR LD = w_vlr * sum_vlr sum_edges v_i
    kl_ie / (16 + eps); each summed over levels.
    """
    from mmdet.models.task_modules.assigners import ATSSAssigner
    from mmengine.structures import InstanceData
    assigner = ATSSAssigner(topk=9)
    (cls_S, reg_S), (cls_T, reg_T) = preds_S, preds_T
    bins = reg_max + 1
    per_img = []
    for gt, meta in zip(gts, metas):
        anchors, valid, counts = [], [], []
        for lvl, s in enumerate(strides):
            h, w = cls_S[lvl].shape[-2:]
            n = 0
            for y in range(h):
                for x in range(w):
                    anchors.append([x * s - 4 * s, y * s - 4 * s, x * s + 4 * s, y * s + 4 * s])
                    ok = (y < math.ceil(meta['pad_shape'][0] / s)
                          and x < math.ceil(meta['pad_shape'][1] / s))
                    valid.append(ok)
                    n += ok
            counts.append(n)
        anchors, valid = torch.tensor(anchors), torch.tensor(valid)
        res = assigner.assign(InstanceData(priors=anchors[valid]), counts, gt)
        label = torch.full((len(anchors), ), -1, dtype=torch.long)
        value = torch.zeros(len(anchors), dtype=torch.float64)
        label[valid] = torch.where(res.gt_inds > 0, res.labels, torch.full_like(res.labels, -1))
        value[valid] = vlr_oracle(anchors[valid], counts, gt.bboxes)
        per_img.append((label, value))
    out = dict(main_ld=0., main_kd=0., vlr_ld=0.)
    start = 0
    for lvl in range(len(strides)):
        h, w = cls_S[lvl].shape[-2:]
        num_pos, ld, kd, vl = 0, 0., 0., 0.
        for i in range(len(gts)):
            label, value = per_img[i]
            for y in range(h):
                for x in range(w):
                    a = start + y * w + x
                    dS = reg_S[lvl][i, :, y, x].reshape(4, bins)
                    dT = reg_T[lvl][i, :, y, x].reshape(4, bins)
                    if label[a] >= 0:
                        num_pos += 1
                        s_i = cls_S[lvl][i, :, y, x].detach().sigmoid().max()
                        ld = ld + sum(s_i * kd_row_oracle(dS[e], dT[e], tau_ld)
                                      for e in range(4))
                        kd = kd + kd_row_oracle(cls_S[lvl][i, :, y, x], cls_T[lvl][i, :, y, x],
                                                tau_kd)
                    if value[a] > 0:
                        vl = vl + sum(value[a] * kd_row_oracle(dS[e], dT[e], tau_ld)
                                      for e in range(4))
        out['main_ld'] = out['main_ld'] + w_ld * ld / (4 + EPS32)
        out['main_kd'] = out['main_kd'] + (w_kd * kd / (num_pos + EPS32) if num_pos else 0.)
        out['vlr_ld'] = out['vlr_ld'] + w_vlr * vl / (16 + EPS32)
        start += h * w
    return out


# ----------------------------------------------------------------- quality-focal KD (CrossKD, BCKD)
def kd_quality_focal_oracle(pred: Tensor, soft: Tensor, beta: float = 1.0, weight=None,
                            avg_factor=None) -> Tensor:
    """TinyTigerPan/BCKD ``mmdet/models/losses/kd_loss.py`` ``novel_kd_loss`` L11-38, one row at
    a time: sum over the classes of BCE(p, sigmoid(t)) * |sigmoid(p) - sigmoid(t)|^beta, times
    the row weight; the sum over rows / (avg_factor + float32 eps). Without ``avg_factor``, the
    mean over the N x C elements as jbwang1997/CrossKD ``kd_quality_focal_loss`` L44-59 (BCKD
    would take the mean over the rows)."""
    rows = []
    for i in range(pred.shape[0]):
        t = torch.sigmoid(soft[i].detach())
        q = torch.sigmoid(pred[i])
        bce = -(t * torch.log(q) + (1 - t) * torch.log(1 - q))
        row = (bce * (q - t).abs()**beta).sum()
        rows.append(row * (1 if weight is None else weight[i]))
    total = sum(rows)
    if avg_factor is None:
        return total / pred.numel()
    return total / (avg_factor + EPS32)


# ------------------------------------------------------------------------- CrossKD on GFL
def _gfl_targets_oracle(head, featmap_sizes, gts, metas):
    """The targets of ``loss_by_feat`` in both official codes: the student head's own
    ``get_anchors`` + ``get_targets`` (mmdet's GFLHead, its train_cfg's ATSS assigner)."""
    anchor_list, valid_flag_list = head.get_anchors(featmap_sizes, metas, device='cpu')
    anchors, labels, label_weights, _, _, avg_factor = head.get_targets(
        anchor_list, valid_flag_list, gts, metas)
    return anchors, labels, label_weights, float(avg_factor)


def crosskd_gfl_oracle(head_S, head_T, x_S: Sequence[Tensor], x_T: Sequence[Tensor], gts,
                       metas, reused_idx: int = 3) -> Dict[str, object]:
    """jbwang1997/CrossKD (87e156a4) ``mmdet/models/detectors/crosskd_gfl.py`` ``loss``
    L33-43, ``forward_crosskd_single`` L55-70 (``activate=False`` then the head conv's own,
    in-place, activation), ``reuse_teacher_head`` L72-86, ``align_scale`` L88-100 (here per
    channel), ``loss_by_feat`` L138-156 and L177-188 and ``pred_mimicking_loss_single``
    L198-227, with the losses of ``configs/crosskd/crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py``
    L53-60 (quality-focal KD beta 1; KL with T 1 summed over the bins, weight 4). ``x_S`` /
    ``x_T`` are the FPN levels of student and teacher; one process (``reduce_mean`` is the
    identity). Returns the cross-head predictions and the two loss terms summed over levels."""

    def forward_crosskd_single(x, scale, head):
        cls_feat, reg_feat = x, x
        cls_hold, reg_hold = x, x
        for i, conv in enumerate(head.cls_convs):
            cls_feat = conv(cls_feat, activate=False)
            if i + 1 == reused_idx:
                cls_hold = cls_feat
            cls_feat = conv.activate(cls_feat)
        for i, conv in enumerate(head.reg_convs):
            reg_feat = conv(reg_feat, activate=False)
            if i + 1 == reused_idx:
                reg_hold = reg_feat
            reg_feat = conv.activate(reg_feat)
        return (head.gfl_cls(cls_feat), scale(head.gfl_reg(reg_feat)).float(), cls_hold,
                reg_hold)

    def align(s, t):
        out = torch.empty_like(s)
        for c in range(s.shape[1]):
            a, b = s[:, c], t[:, c]
            out[:, c] = (a - a.mean()) / (a.std() + 1e-6) * b.std() + b.mean()
        return out

    tea = [forward_crosskd_single(x, sc, head_T) for x, sc in zip(x_T, head_T.scales)]
    stu = [forward_crosskd_single(x, sc, head_S) for x, sc in zip(x_S, head_S.scales)]
    reused_cls, reused_reg = [], []
    for (_, _, t_cls, t_reg), (_, _, s_cls, s_reg), scale in zip(tea, stu, head_T.scales):
        c, r = align(s_cls, t_cls), align(s_reg, t_reg)
        if reused_idx != 0:
            c, r = F.relu(c), F.relu(r)
        for i in range(reused_idx, head_T.stacked_convs):
            c, r = head_T.cls_convs[i](c), head_T.reg_convs[i](r)
        reused_cls.append(head_T.gfl_cls(c))
        reused_reg.append(scale(head_T.gfl_reg(r)).float())

    sizes = [t[0].shape[-2:] for t in tea]
    _, _, label_weights_list, avg_factor = _gfl_targets_oracle(head_S, sizes, gts, metas)
    bins = head_S.reg_max + 1
    cls_kd, reg_kd, kd_avg_factor = 0., [], 0.
    levels = zip(tea, reused_cls, reused_reg, label_weights_list)
    for (t_score, t_pred, _, _), r_score, r_pred, lw in levels:
        t_score = t_score.permute(0, 2, 3, 1).reshape(-1, head_S.cls_out_channels)
        r_score = r_score.permute(0, 2, 3, 1).reshape(-1, head_S.cls_out_channels)
        lw = lw.reshape(-1)
        cls_kd = cls_kd + kd_quality_focal_oracle(r_score, t_score, 1.0, lw, avg_factor)
        t_pred = t_pred.permute(0, 2, 3, 1).reshape(-1, bins)
        r_pred = r_pred.permute(0, 2, 3, 1).reshape(-1, bins)
        reg_weights = t_score.max(dim=1)[0].sigmoid()
        reg_weights[lw == 0] = 0
        w = reg_weights[:, None].expand(-1, 4).reshape(-1)
        level = sum(w[j] * kd_row_oracle(r_pred[j], t_pred[j], 1.0, over='sum')
                    for j in range(r_pred.shape[0]))
        reg_kd.append(4.0 * level / (4.0 + EPS32))
        kd_avg_factor = kd_avg_factor + reg_weights.sum()
    return dict(cls_scores=reused_cls, bbox_preds=reused_reg, cls_kd=cls_kd,
                reg_kd=sum(r / kd_avg_factor for r in reg_kd))


# ---------------------------------------------------------------------------- BCKD on GFL
def giou_oracle(a: Sequence, b: Sequence, eps: float = 1e-6):
    """mmdet ``bbox_overlaps(mode='giou', is_aligned=True)`` for one pair, as mmdet 2.28's
    ``GIoULoss`` calls it (eps 1e-6 on the union and the enclosing area); autograd-able."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
    h = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
    overlap = w * h
    union = torch.clamp(area_a + area_b - overlap, min=eps)
    enclose = ((torch.maximum(a[2], b[2]) - torch.minimum(a[0], b[0])).clamp(min=0) *
               (torch.maximum(a[3], b[3]) - torch.minimum(a[1], b[1])).clamp(min=0))
    enclose = torch.clamp(enclose, min=eps)
    return overlap / union - (enclose - union) / enclose


def bckd_gfl_oracle(head, preds_S, preds_T, gts, metas, w_cls: float = 1.0,
                    w_loc: float = 4.0) -> Dict[str, Tensor]:
    """TinyTigerPan/BCKD (121c9aa2) ``mmdet/models/dense_heads/ld_head.py`` ``loss`` L353-356
    (``num_total_samples``) and ``loss_single`` L145-176, L213-217, anchor by anchor: a level
    with positives gets cls KD = w_cls * sum_i m_i novel_kd_i / A (``novel_kd_loss``) and loc
    KD = w_loc * sum_i w_i (1 - GIoU(b^S_i, b^T_i)) / A, b decoded by GFL's integral (softmax
    . [0..reg_max]) around the anchor centre / stride, w_i = m_i max_c |sigmoid(t) -
    sigmoid(s)|; GIoULoss returns 0 when no weight is positive. ``head`` gives the student's
    targets (mmdet's GFLHead with its train_cfg); sums over levels."""
    (cls_S, reg_S), (cls_T, reg_T) = preds_S, preds_T
    sizes = [c.shape[-2:] for c in cls_S]
    anchors_list, labels_list, label_weights_list, avg = _gfl_targets_oracle(
        head, sizes, gts, metas)
    avg = max(avg, 1.0)
    C, bins = head.cls_out_channels, head.reg_max + 1
    project = torch.arange(bins, dtype=torch.float64)
    out = dict(cls_kd=0., loc_kd=0.)
    for lvl, (stride, _) in enumerate(head.prior_generator.strides):
        anchors = anchors_list[lvl].reshape(-1, 4).double()
        s = cls_S[lvl].permute(0, 2, 3, 1).reshape(-1, C)
        t = cls_T[lvl].detach().permute(0, 2, 3, 1).reshape(-1, C)
        dS = reg_S[lvl].permute(0, 2, 3, 1).reshape(-1, 4, bins)
        dT = reg_T[lvl].detach().permute(0, 2, 3, 1).reshape(-1, 4, bins)
        labels = labels_list[lvl].reshape(-1)
        lw = label_weights_list[lvl].reshape(-1)
        if not ((labels >= 0) & (labels < C)).any():
            continue
        out['cls_kd'] = out['cls_kd'] + w_cls * kd_quality_focal_oracle(s, t, 1.0, lw, avg)
        loc, any_weight = 0., False
        for i in range(anchors.shape[0]):
            cx = (anchors[i, 0] + anchors[i, 2]) / 2 / stride
            cy = (anchors[i, 1] + anchors[i, 3]) / 2 / stride
            eS = [torch.softmax(dS[i, e], 0) @ project.to(dS) for e in range(4)]
            eT = [torch.softmax(dT[i, e], 0) @ project.to(dT) for e in range(4)]
            bS = [cx - eS[0], cy - eS[1], cx + eS[2], cy + eS[3]]
            bT = [cx - eT[0], cy - eT[1], cx + eT[2], cy + eT[3]]
            w = (torch.sigmoid(t[i]) - torch.sigmoid(s[i].detach())).abs().max() * lw[i]
            any_weight = any_weight or bool(w > 0)
            loc = loc + w * (1 - giou_oracle(bS, bT))
        if any_weight:
            out['loc_kd'] = out['loc_kd'] + w_loc * loc / (avg + EPS32)
    return out


# ---------------------------------------------------------------------------------- helpers
def random_boxes(num: int, img_h: float, img_w: float, gen: torch.Generator,
                 min_size: float = 2.0) -> Tensor:
    """``num`` random x1y1x2y2 boxes inside an ``img_h x img_w`` image (float32)."""
    if num == 0:
        return torch.zeros((0, 4))
    x1 = torch.rand(num, generator=gen) * (img_w - min_size)
    y1 = torch.rand(num, generator=gen) * (img_h - min_size)
    bw = min_size + torch.rand(num, generator=gen) * (img_w - x1 - min_size)
    bh = min_size + torch.rand(num, generator=gen) * (img_h - y1 - min_size)
    # bias toward small boxes (as in COCO)
    shrink = torch.rand(num, generator=gen).pow(2)
    return torch.stack([x1, y1, x1 + bw * shrink + 1, y1 + bh * shrink + 1], dim=1)


def random_levels(shapes: Sequence[Sequence[int]], n: int = 2, cs: int = 4, ct: int = 4,
                  seed: int = 0, dtype: torch.dtype = torch.float32):
    """Student (``requires_grad``) and teacher N x C x H x W maps of standard-normal values,
    one pair per ``(H, W)`` of ``shapes``."""
    gen = torch.Generator().manual_seed(seed)
    S = [torch.randn(n, cs, h, w, generator=gen).to(dtype).requires_grad_() for h, w in shapes]
    T = [torch.randn(n, ct, h, w, generator=gen).to(dtype) for h, w in shapes]
    return S, T


def randomise_parameters(module: torch.nn.Module, seed: int, std: float = 0.2,
                         vector_mean: float = 0.0) -> torch.nn.Module:
    """Every parameter ~ N(0, std^2) (1-D ones, e.g. norm scales, centred on ``vector_mean``),
    so that no zero-initialised layer hides a gradient."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std +
                    (vector_mean if p.dim() == 1 else 0.0))
    return module


def assert_close_rel(ours: Tensor, ref, rtol: float = 1e-5) -> None:
    """``rtol`` relative; elements near zero are compared against 1e-6 of the largest
    magnitude (a float32 result against a float64 reference)."""
    ref = torch.as_tensor(ref).detach().double()
    atol = max(1e-6 * ref.abs().max().item(), 1e-12)
    torch.testing.assert_close(ours.detach().double(), ref, rtol=rtol, atol=atol)


def rel_err(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max(max |b|, tiny)."""
    a, b = a.detach().double(), b.detach().double()
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)


__all__ = [name for name in dir() if name.endswith('_oracle')] + [
    'EPS32', 'assert_close_rel', 'random_boxes', 'random_levels', 'randomise_parameters', 'rel_err'
]
