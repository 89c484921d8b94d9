"""Pictures of what a distillation set-up sees and weighs on one image.

    python tools/analysis_tools/visualize_distill.py CONFIG --image IMG --out DIR
        [--teacher-ckpt PATH] [--student-ckpt PATH] [--ann COCO_JSON] [--cwd-top K]

Builds the ``mmkd.DetectionDistill`` model of CONFIG (teacher weights from ``--teacher-ckpt``,
else the config's ``teacher_ckpt``; without any, random weights and a warning), the student from
``--student-ckpt`` (a training checkpoint of CONFIG or a plain exported student; else its
initial weights), runs teacher and student on IMG through the config's test pipeline and writes:

* ``00_image_gt.png``        the input image (padded batch canvas) with its GT boxes;
* ``01_feature_energy.png``  per FPN level: teacher and student ``mean_c |F|`` and T - S;
* ``02_fgd_masks.png``       per level: FGD's teacher/student spatial attention, foreground
                             (1/area) and background (1/#bg) masks and the focal pixel weight
                             (``mmkd.models.losses.fgd.fgd_attention``, ``fgd_masks``);
* ``03_defeat_levels.png``   DeFeat's level of each GT and its per-level binary mask
                             (``map_boxes_to_levels``, ``defeat_gt_masks``);
* ``04_ld_regions.png``      LD's main region (the student's ATSS positives, coloured by the
                             Main-LD weight max sigmoid score) and the VLR anchors (coloured by
                             their ``vlr_region`` IoU weight) over the image;
* ``05_ld_levels.png``       the same two weights per level on each feature grid;
* ``06_cwd_<level>.png``     CWD's per-channel spatial softmax of teacher and student for the
                             ``--cwd-top`` channels with the largest KL(p_T || p_S);
* ``summary.json``           the numbers behind every picture, and the pictures skipped and why.

The method pictures are made whenever their inputs exist (GT boxes, a GFL/ATSS-style student
head for LD, equal channels or an align conv for CWD), whatever loss the config trains with;
method parameters (FGD temp/alpha/beta, DeFeat strides, CWD tau, LD assigner) come from the
config's loss when it has one, else from the method's defaults (the titles say which).
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import mmkd  # noqa: F401
from mmengine.config import Config, DictAction
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.patches import Rectangle

from mmkd.visualization.figures import panel_figure, save_figure

GT_COLOR = '#00ff66'
TITLE_FS = 7


# ----------------------------------------------------------------------------- model and data
def resolve_teacher_ckpt(cfg: Config, flag: Optional[str]) -> Optional[str]:
    """The flag wins (it must exist); a config path that is missing here gives a warning."""
    if flag:
        if not osp.isfile(flag):
            raise SystemExit(f'--teacher-ckpt {flag!r} does not exist')
        return flag
    path = cfg.model.get('teacher_ckpt')
    if not path:
        warnings.warn('visualize_distill: no teacher checkpoint (config has none, no '
                      '--teacher-ckpt); the teacher has RANDOM weights.')
        return None
    if '://' not in path and not osp.isfile(path):
        warnings.warn(f'visualize_distill: the config\'s teacher_ckpt {path!r} does not exist '
                      'here; the teacher has RANDOM weights (pass --teacher-ckpt).')
        return None
    return path


def build_model(cfg: Config, teacher_ckpt: Optional[str], student_ckpt: Optional[str]):
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope
    # the current logger: warnings only (not mmengine's per-parameter init report)
    MMLogger.get_instance('visualize_distill', log_level='WARNING')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if 'teacher' not in cfg.model:
        raise SystemExit('visualize_distill needs a distillation config (model.teacher and '
                         'model.architecture); this one has no teacher.')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_ckpt = teacher_ckpt
    model = MODELS.build(model_cfg)
    if student_ckpt:
        ckpt = torch.load(student_ckpt, map_location='cpu', weights_only=True)
        state = ckpt.get('state_dict', ckpt)
        if any(k.startswith('architecture.') for k in state):
            target, what = model, 'distillation checkpoint'
        else:
            target, what = model.student, 'student checkpoint'
        missing, unexpected = target.load_state_dict(state, strict=False)
        print(f'loaded {what} {student_ckpt}: {len(missing)} missing, '
              f'{len(unexpected)} unexpected keys')
    model.eval()
    return model


def _eval_dataset_cfg(cfg: Config):
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if loader is None:
        raise SystemExit('the config has no test_dataloader/val_dataloader (test pipeline)')
    dataset = loader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset.dataset
    return dataset


def default_ann_file(cfg: Config) -> Optional[str]:
    ev = cfg.get('val_evaluator') or cfg.get('test_evaluator') or {}
    if isinstance(ev, dict) and ev.get('ann_file'):
        return ev['ann_file']
    dataset = _eval_dataset_cfg(cfg)
    if dataset.get('ann_file'):
        return osp.join(dataset.get('data_root', '') or '', dataset.ann_file)
    return None


def class_names(cfg: Config) -> Tuple[str, ...]:
    dataset = _eval_dataset_cfg(cfg)
    meta = dataset.get('metainfo') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    from mmdet.registry import DATASETS
    cls = DATASETS.get(dataset.type)
    return tuple(getattr(cls, 'METAINFO', {}).get('classes', ()))


def find_gt(ann_file: Optional[str], image: str, classes: Sequence[str]):
    """GT of ``image`` from a COCO json: (instances for the pipeline, names) or (None, reason)."""
    if not ann_file or not osp.isfile(ann_file):
        return None, f'annotation file {ann_file!r} not found'
    with open(ann_file) as f:
        coco = json.load(f)
    norm = osp.normpath(osp.abspath(image))
    match = [im for im in coco.get('images', [])
             if norm.endswith(osp.sep + osp.normpath(im['file_name']))]
    if not match:
        match = [im for im in coco.get('images', [])
                 if osp.basename(im['file_name']) == osp.basename(image)]
    if len(match) != 1:
        return None, (f'{osp.basename(image)} is not in {ann_file}' if not match else
                      f'{len(match)} images of {ann_file} match {osp.basename(image)}')
    img_info = match[0]
    cats = {c['id']: c['name'] for c in coco.get('categories', [])}
    sorted_ids = sorted(cats)
    instances, names = [], []
    for ann in coco.get('annotations', []):
        if ann['image_id'] != img_info['id']:
            continue
        x, y, w, h = ann['bbox']
        name = cats.get(ann['category_id'], str(ann['category_id']))
        label = classes.index(name) if name in classes else sorted_ids.index(ann['category_id'])
        instances.append(dict(bbox=[x, y, x + w, y + h], bbox_label=label,
                              ignore_flag=int(ann.get('iscrowd', 0))))
        names.append(name)
    return (instances, names, img_info['id']), None


def load_sample(cfg: Config, model, image: str, ann_file: Optional[str]):
    """Run IMG through the test pipeline and the data preprocessor."""
    from mmengine.dataset import Compose
    from mmengine.structures import InstanceData
    pipeline = copy.deepcopy(_eval_dataset_cfg(cfg).pipeline)
    found, reason = find_gt(ann_file, image, class_names(cfg))
    data = dict(img_path=image, img_id=0)
    names: List[str] = []
    if found is None:
        warnings.warn(f'visualize_distill: no GT boxes ({reason}); GT-based pictures are '
                      'skipped. Pass --ann COCO_JSON.')
        pipeline = [t for t in pipeline
                    if t['type'] not in ('LoadAnnotations', 'mmdet.LoadAnnotations')]
    else:
        data['instances'], names, data['img_id'] = found
    packed = Compose(pipeline)(data)
    batch = model.data_preprocessor(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False)
    sample = batch['data_samples'][0]
    gt = sample.gt_instances
    if 'bboxes' not in gt:
        sample.gt_instances = InstanceData(bboxes=torch.zeros((0, 4)),
                                           labels=torch.zeros((0, ), dtype=torch.long))
    raw = packed['inputs'].permute(1, 2, 0).numpy()
    if raw.shape[2] == 3:
        raw = raw[..., ::-1]  # LoadImageFromFile gives BGR
    pad_h, pad_w = batch['inputs'].shape[-2:]
    canvas = np.zeros((pad_h, pad_w, raw.shape[2]), dtype=np.uint8)
    canvas[:raw.shape[0], :raw.shape[1]] = raw[:pad_h, :pad_w]
    return batch['inputs'], sample, canvas, names, found is not None, reason


# ----------------------------------------------------------------------------- drawing helpers
def level_strides(model, feats: Sequence[torch.Tensor], input_hw) -> List[int]:
    """Strides of the feature levels: the student head's prior generator when it fits."""
    for head_name in ('bbox_head', 'rpn_head'):
        head = getattr(model.student, head_name, None)
        gen = getattr(head, 'prior_generator', None)
        strides = getattr(gen, 'strides', None)
        if strides is not None and len(strides) == len(feats):
            return [int(s[0] if isinstance(s, (tuple, list)) else s) for s in strides]
    return [max(1, int(round(input_hw[0] / f.shape[-2]))) for f in feats]


def level_name(stride: int) -> str:
    k = math.log2(stride)
    return f'P{int(k)}' if k == int(k) else f's{stride}'


def show_map(ax, fig, values: np.ndarray, extent_hw, title: str, cmap='viridis', norm=None,
             canvas: Optional[np.ndarray] = None, alpha: float = 1.0):
    """A feature-grid map stretched over the padded image (nearest), with a colour bar."""
    h, w = extent_hw
    if canvas is not None:
        ax.imshow(canvas.mean(axis=2) if canvas.ndim == 3 else canvas, cmap='gray',
                  extent=(0, w, h, 0))
    im = ax.imshow(values, cmap=cmap, norm=norm, interpolation='nearest', extent=(0, w, h, 0),
                   alpha=alpha)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=TITLE_FS)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.ax.tick_params(labelsize=5)
    return im


def draw_boxes(ax, boxes: np.ndarray, color=GT_COLOR, labels: Optional[Sequence[str]] = None,
               lw: float = 1.0, ls='-'):
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, lw=lw,
                               ls=ls))
        if labels is not None:
            ax.text(x1, y1, labels[i], color='black', fontsize=6, va='bottom',
                    bbox=dict(facecolor=color, alpha=0.8, pad=0.5, lw=0))


def mm(t) -> str:
    t = np.asarray(t)
    return f'min {t.min():.3g} max {t.max():.3g}' if t.size else 'empty'


def find_losses(model, cls) -> list:
    losses = getattr(model.distiller, 'distill_losses', {})
    return [(name, loss) for name, loss in losses.items() if isinstance(loss, cls)]


# ----------------------------------------------------------------------------- the pictures
class Visualizer:
    def __init__(self, model, cfg, inputs, sample, canvas, names, image, out_dir):
        self.model, self.cfg = model, cfg
        self.inputs, self.sample, self.canvas, self.names = inputs, sample, canvas, names
        self.image, self.out = image, out_dir
        self.pad_hw = tuple(inputs.shape[-2:])
        self.gt = sample.gt_instances.bboxes
        self.gt = getattr(self.gt, 'tensor', self.gt).float()
        self.gt_np = self.gt.numpy()
        self.gt_labels = [f'#{i} {n}' for i, n in enumerate(names)] if names else \
            [f'#{i}' for i in range(len(self.gt_np))]
        with torch.no_grad():
            teacher_inputs = getattr(model, 'teacher_inputs', None)
            self.feats_T = tuple(model.teacher.extract_feat(
                teacher_inputs(inputs, [sample]) if teacher_inputs else inputs))
            self.feats_S = tuple(model.student.extract_feat(inputs))
            head = getattr(model.student, 'bbox_head', None)
            self.head_S = head(self.feats_S) if head is not None else None
        self.strides = level_strides(model, self.feats_S, self.pad_hw)
        self.levels = [level_name(s) for s in self.strides]
        self.summary: Dict = dict(image=image, input_hw=list(self.pad_hw),
                                  img_shape=list(sample.metainfo['img_shape']),
                                  num_gt=int(len(self.gt_np)), levels=self.levels,
                                  strides=self.strides, pictures={}, skipped={})

    def _file(self, name: str) -> str:
        return osp.join(self.out, name)

    def skip(self, key: str, why: str) -> None:
        print(f'  skipped {key}: {why}')
        self.summary['skipped'][key] = why

    def record(self, key: str, path: str, **numbers) -> None:
        print(f'  wrote {osp.basename(path)}')
        self.summary['pictures'][key] = dict(file=osp.basename(path), **numbers)

    # -- 00
    def image_gt(self):
        h, w = self.pad_hw
        ih, iw = self.sample.metainfo['img_shape'][:2]
        fig, axes = panel_figure(1, 1, f'{osp.basename(self.image)}: input {ih}x{iw} (padded '
                                 f'batch {h}x{w}), {len(self.gt_np)} GT boxes', panel_in=6.0)
        ax = axes[0, 0]
        ax.imshow(self.canvas, extent=(0, w, h, 0))
        draw_boxes(ax, self.gt_np, labels=self.gt_labels, lw=1.5)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title('GT boxes in input pixels (after the test pipeline\'s resize)',
                     fontsize=TITLE_FS)
        path = save_figure(fig, self._file('00_image_gt.png'))
        self.record('image_gt', path, grid=[1, 1], panel_in=6.0, num_gt=len(self.gt_np))

    # -- 01
    def feature_energy(self):
        n = len(self.feats_T)
        if len(self.feats_S) != n:
            return self.skip('feature_energy', f'teacher has {n} levels, student '
                             f'{len(self.feats_S)}')
        fig, axes = panel_figure(n, 3, 'Feature energy mean_c |F| per FPN level: teacher, '
                                 'student, teacher - student (each map on its own scale)')
        numbers = []
        for lvl, (ft, fs) in enumerate(zip(self.feats_T, self.feats_S)):
            name = f'{self.levels[lvl]} (stride {self.strides[lvl]})'
            et = ft[0].abs().mean(0).numpy()
            es = fs[0].abs().mean(0).numpy()
            if et.shape != es.shape:
                es = F.interpolate(torch.from_numpy(es)[None, None], size=et.shape,
                                   mode='bilinear', align_corners=False)[0, 0].numpy()
            diff = et - es
            lim = max(float(np.abs(diff).max()), 1e-12)
            show_map(axes[lvl, 0], fig, et, self.pad_hw,
                     f'{name} teacher C={ft.shape[1]} {et.shape[0]}x{et.shape[1]}\n{mm(et)}')
            show_map(axes[lvl, 1], fig, es, self.pad_hw,
                     f'{name} student C={fs.shape[1]}\n{mm(es)}')
            show_map(axes[lvl, 2], fig, diff, self.pad_hw,
                     f'{name} T - S\n{mm(diff)}, mean|T-S| {np.abs(diff).mean():.3g}',
                     cmap='RdBu_r', norm=TwoSlopeNorm(0.0, -lim, lim))
            for ax in axes[lvl]:
                draw_boxes(ax, self.gt_np, lw=0.6)
            numbers.append(dict(level=self.levels[lvl], stride=self.strides[lvl],
                                hw=list(et.shape), teacher_min=float(et.min()),
                                teacher_max=float(et.max()), student_min=float(es.min()),
                                student_max=float(es.max()),
                                mean_abs_diff=float(np.abs(diff).mean())))
        path = save_figure(fig, self._file('01_feature_energy.png'))
        self.record('feature_energy', path, grid=[n, 3], levels=numbers)

    # -- 02
    def fgd(self):
        from mmkd.models.losses.fgd import FGDLoss, fgd_attention, fgd_masks
        if len(self.gt_np) == 0:
            return self.skip('fgd', 'no GT boxes: the foreground mask is empty')
        found = find_losses(self.model, FGDLoss)
        loss = found[0][1] if found else None
        temp = loss.temp if loss else 0.5
        alpha = loss.alpha_fgd if loss else 1e-3
        beta = loss.beta_fgd if loss else 5e-4
        box_scale = loss.box_scale if loss else 'padded'
        source = f'config loss {found[0][0]}' if found else 'FGD defaults, config has no FGDLoss'
        n = len(self.feats_T)
        fig, axes = panel_figure(
            n, 5, f'FGD per level ({source}): temp {temp}, alpha {alpha:g}, beta {beta:g}, '
            f'boxes scaled by {box_scale}\nattention S = HW softmax(mean_c|F|/T); focal weight '
            '= (alpha M + beta B) S_teacher, what the fg/bg feature loss weighs per pixel')
        numbers = []
        for lvl, (ft, fs) in enumerate(zip(self.feats_T, self.feats_S)):
            name = f'{self.levels[lvl]} s{self.strides[lvl]}'
            h, w = ft.shape[-2:]
            with torch.no_grad():
                att_t = fgd_attention(ft.float(), temp)[0][0].numpy()
                fs_al = fs.float()
                if loss is not None and loss.align is not None and fs.shape[1] == \
                        loss.student_channels:
                    fs_al = loss.align(fs_al)
                att_s = fgd_attention(fs_al, temp)[0][0].numpy() if fs.shape[-2:] == \
                    ft.shape[-2:] else np.zeros_like(att_t)
            m_fg, m_bg = fgd_masks([self.sample.gt_instances], [self.sample.metainfo], (h, w),
                                   box_scale)
            m_fg, m_bg = m_fg[0].numpy(), m_bg[0].numpy()
            weight = (alpha * m_fg + beta * m_bg) * att_t
            n_fg = int((m_fg > 0).sum())
            show_map(axes[lvl, 0], fig, att_t, self.pad_hw,
                     f'{name} teacher spatial att.\n{mm(att_t)}', cmap='magma')
            show_map(axes[lvl, 1], fig, att_s, self.pad_hw,
                     f'{name} student spatial att.\n{mm(att_s)}', cmap='magma')
            show_map(axes[lvl, 2], fig, m_fg, self.pad_hw,
                     f'{name} fg mask M=1/area\n{n_fg}/{h * w} px, {mm(m_fg)}')
            show_map(axes[lvl, 3], fig, m_bg, self.pad_hw,
                     f'{name} bg mask B=1/#bg\n{h * w - n_fg} px, value '
                     f'{m_bg.max():.3g}')
            show_map(axes[lvl, 4], fig, weight, self.pad_hw,
                     f'{name} focal weight\n{mm(weight)}', cmap='inferno')
            for ax in axes[lvl]:
                draw_boxes(ax, self.gt_np, lw=0.6)
            numbers.append(dict(level=self.levels[lvl], stride=self.strides[lvl], hw=[h, w],
                                fg_pixels=n_fg, att_t_max=float(att_t.max()),
                                weight_max=float(weight.max())))
        path = save_figure(fig, self._file('02_fgd_masks.png'))
        self.record('fgd', path, grid=[n, 5], temp=temp, alpha=alpha, beta=beta,
                    source=source, levels=numbers)

    # -- 03
    def defeat(self):
        from mmkd.models.losses.defeat import DeFeatLoss, defeat_gt_masks, map_boxes_to_levels
        if len(self.gt_np) == 0:
            return self.skip('defeat', 'no GT boxes to assign')
        found = find_losses(self.model, DeFeatLoss)
        if found and len(found[0][1].strides) == len(self.feats_T):
            strides, finest = list(found[0][1].strides), found[0][1].finest_scale
            source = f'config loss {found[0][0]}'
        else:
            strides, finest = self.strides, 56.
            source = 'DeFeat defaults on the neck levels'
        n = len(strides)
        sizes = [f.shape[-2:] for f in self.feats_T]
        masks = defeat_gt_masks([self.sample.gt_instances], sizes, strides, finest)
        lvls = map_boxes_to_levels(self.gt, n, finest).tolist()
        ncols = min(n, 5)
        nrows = int(math.ceil(n / ncols))
        fig, axes = panel_figure(
            nrows, ncols, f'DeFeat GT assignment ({source}): level = floor(log2(sqrt((w+1)(h+1))'
            f'/{finest:g})), clamped to {n} levels; mask = int(box/stride) block (binary)')
        per_level = []
        for lvl in range(n):
            ax = axes[lvl // ncols, lvl % ncols]
            mask = masks[lvl][0].numpy()
            ids = [i for i, lv in enumerate(lvls) if lv == lvl]
            show_map(ax, fig, np.ma.masked_equal(mask, 0), self.pad_hw,
                     f'{level_name(strides[lvl])} stride {strides[lvl]}: {len(ids)} GT '
                     f'{ids}\n{int(mask.sum())}/{mask.size} fg px', cmap='autumn',
                     norm=Normalize(0, 1), canvas=self.canvas, alpha=0.55)
            draw_boxes(ax, self.gt_np, color='#aaaaaa', lw=0.5, ls='--')
            draw_boxes(ax, self.gt_np[ids], labels=[self.gt_labels[i] for i in ids], lw=1.2)
            per_level.append(dict(level=level_name(strides[lvl]), stride=strides[lvl],
                                  gts=ids, fg_pixels=int(mask.sum())))
        for k in range(n, nrows * ncols):
            axes[k // ncols, k % ncols].axis('off')
        path = save_figure(fig, self._file('03_defeat_levels.png'))
        self.record('defeat', path, grid=[nrows, ncols], finest_scale=finest, source=source,
                    gt_levels=lvls, levels=per_level)

    # -- 04, 05
    def _ld_loss(self):
        """The config's GFLLDLoss, else one built from the student head's anchors/assigner."""
        from mmkd.models.algorithms.model_cfg import expand_model_cfg
        from mmkd.models.losses.ld_gfl import GFLLDLoss
        found = find_losses(self.model, GFLLDLoss)
        if found:
            return found[0][1], f'config loss {found[0][0]}'
        student_cfg = expand_model_cfg(copy.deepcopy(self.cfg.model.architecture))
        head_cfg = student_cfg.get('bbox_head')
        if not head_cfg or 'anchor_generator' not in head_cfg:
            raise ValueError(f'the student ({type(self.model.student).__name__}) has no '
                             'one-stage anchor head (bbox_head.anchor_generator): LD\'s '
                             'regions are defined on GFL/ATSS anchors')
        train_cfg = student_cfg.get('train_cfg') or {}
        loss = GFLLDLoss(
            num_classes=head_cfg.get('num_classes', 80), reg_max=head_cfg.get('reg_max', 16),
            anchor_generator=head_cfg['anchor_generator'].to_dict(),
            assigner=dict(train_cfg.get('assigner', dict(type='ATSSAssigner', topk=9))),
            allowed_border=train_cfg.get('allowed_border', -1),
            pos_weight=train_cfg.get('pos_weight', -1))
        return loss, 'the student head\'s anchors and assigner; config has no GFLLDLoss'

    def ld(self):
        if len(self.gt_np) == 0:
            return self.skip('ld', 'no GT boxes: no positives, no VLR')
        if self.head_S is None:
            return self.skip('ld', f'the student ({type(self.model.student).__name__}) has no '
                             'one-stage bbox_head: LD\'s regions are defined on GFL/ATSS '
                             'anchors')
        try:
            loss, source = self._ld_loss()
        except ValueError as err:
            return self.skip('ld', str(err))
        cls_scores = self.head_S[0]
        sizes = [c.shape[-2:] for c in cls_scores]
        if len(sizes) != len(loss.prior_generator.strides):
            return self.skip('ld', f'{len(sizes)} head levels but '
                             f'{len(loss.prior_generator.strides)} '
                             'anchor strides')
        with_vlr = loss.with_vlr
        loss.with_vlr = True  # a config's LD may train without VLR; the region is still LD's
        try:
            anchors, labels, _, vlr = loss.get_targets(sizes, [self.sample.gt_instances],
                                                       [self.sample.metainfo])
        finally:
            loss.with_vlr = with_vlr
        strides = [int(s[0]) for s in loss.prior_generator.strides]
        main_b, main_w, vlr_b, vlr_w, per_level = [], [], [], [], []
        for lvl, cls in enumerate(cls_scores):
            score = cls[0].permute(1, 2, 0).reshape(-1, cls.shape[1]).sigmoid().max(1)[0]
            pos = labels[lvl][0] < loss.num_classes
            in_vlr = vlr[lvl][0] > 0
            main_b.append(anchors[lvl][0][pos])
            main_w.append(score[pos])
            vlr_b.append(anchors[lvl][0][in_vlr])
            vlr_w.append(vlr[lvl][0][in_vlr])
            per_level.append(dict(level=level_name(strides[lvl]), stride=strides[lvl],
                                  hw=list(sizes[lvl]), main=int(pos.sum()),
                                  vlr=int(in_vlr.sum()), score=score, pos=pos,
                                  vlr_values=vlr[lvl][0]))
        main_b, main_w = torch.cat(main_b).numpy(), torch.cat(main_w).numpy()
        vlr_b, vlr_w = torch.cat(vlr_b).numpy(), torch.cat(vlr_w).numpy()
        gamma, topk = loss.vlr_gamma, loss.vlr_topk

        # 04: anchors over the image
        fig, axes = panel_figure(1, 2, f'LD regions of the student\'s anchors ({source}); GT '
                                 'white, dashed', panel_in=5.0)
        h, w = self.pad_hw
        drawn = {}
        for ax, boxes, weights, cmap, title, key in (
                (axes[0, 0], main_b, main_w, 'viridis',
                 f'main region: {len(main_b)} ATSS positives\ncolour = Main-LD weight max '
                 f'sigmoid cls score, {mm(main_w)}', 'main'),
                (axes[0, 1], vlr_b, vlr_w, 'plasma',
                 f'VLR: {len(vlr_b)} anchors, {gamma:g} a_pos <= DIoU < a_pos (topk {topk})\n'
                 f'colour = VLR weight (IoU), {mm(vlr_w)}', 'vlr')):
            ax.imshow(self.canvas, extent=(0, w, h, 0), alpha=0.6)
            norm = Normalize(float(weights.min()) if len(weights) else 0.0,
                             float(weights.max()) if len(weights) else 1.0)
            colormap = colormaps[cmap]
            order = np.argsort(weights)  # strongest drawn last, on top
            for i in order:
                x1, y1, x2, y2 = boxes[i]
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False,
                                       edgecolor=colormap(norm(weights[i])), lw=0.9))
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                ax.plot(cx, cy, '.', ms=3, color=colormap(norm(weights[i])))
            drawn[key] = len(order)
            draw_boxes(ax, self.gt_np, color='white', lw=1.4, ls='--')
            ax.set_xlim(min(0, boxes[:, 0].min()) if len(boxes) else 0,
                        max(w, boxes[:, 2].max()) if len(boxes) else w)
            ax.set_ylim(max(h, boxes[:, 3].max()) if len(boxes) else h,
                        min(0, boxes[:, 1].min()) if len(boxes) else 0)
            ax.set_title(title, fontsize=TITLE_FS + 1)
            ax.tick_params(labelsize=6)
            cb = fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=ax, fraction=0.046,
                              pad=0.02)
            cb.ax.tick_params(labelsize=6)
        path = save_figure(fig, self._file('04_ld_regions.png'))
        counts = [dict((k, v) for k, v in d.items() if k not in ('score', 'pos', 'vlr_values'))
                  for d in per_level]
        self.record('ld', path, grid=[1, 2], panel_in=5.0, source=source, gamma=gamma,
                    topk=topk, main_anchors=int(len(main_b)), vlr_anchors=int(len(vlr_b)),
                    drawn_main_boxes=drawn['main'], drawn_vlr_boxes=drawn['vlr'],
                    levels=counts)

        # 05: per level grids
        n = len(per_level)
        fig, axes = panel_figure(2, n, 'LD per level on the student\'s grid: Main-LD weight on '
                                 'the ATSS positives (top), VLR weight (bottom); 0 elsewhere')
        for lvl, d in enumerate(per_level):
            hh, ww = d['hw']
            main_map = (d['score'] * d['pos']).reshape(hh, ww).numpy()
            vlr_map = d['vlr_values'].reshape(hh, ww).numpy()
            show_map(axes[0, lvl], fig, np.ma.masked_equal(main_map, 0), self.pad_hw,
                     f'{d["level"]} s{d["stride"]} main: {d["main"]} pos\n'
                     f'{mm(main_map[main_map > 0])}',
                     canvas=self.canvas, alpha=0.8)
            show_map(axes[1, lvl], fig, np.ma.masked_equal(vlr_map, 0), self.pad_hw,
                     f'{d["level"]} s{d["stride"]} VLR: {d["vlr"]} anchors\n'
                     f'{mm(vlr_map[vlr_map > 0])}', cmap='plasma', canvas=self.canvas,
                     alpha=0.8)
            for ax in axes[:, lvl]:
                draw_boxes(ax, self.gt_np, lw=0.6)
        path = save_figure(fig, self._file('05_ld_levels.png'))
        self.record('ld_levels', path, grid=[2, n], levels=counts)

    # -- 06
    def cwd(self, top: int):
        from mmkd.models.losses.cwd import ChannelWiseDivergence
        found = find_losses(self.model, ChannelWiseDivergence)
        loss = found[0][1] if found else None
        tau = loss.tau if loss else 1.0
        source = f'config loss {found[0][0]}, tau {tau:g}' if found else \
            f'CWD default tau {tau:g}, config has no ChannelWiseDivergence'
        made = []
        for lvl, (ft, fs) in enumerate(zip(self.feats_T, self.feats_S)):
            if loss is not None and loss.align is not None and \
                    fs.shape[1] == loss.align.in_channels:
                with torch.no_grad():
                    fs = loss.align(fs.float())
            key = f'cwd_{self.levels[lvl]}'
            if fs.shape != ft.shape:
                self.skip(key, f'student {tuple(fs.shape)} and teacher {tuple(ft.shape)} '
                          'differ and the config has no CWD align conv')
                continue
            c, h, w = ft.shape[1:]
            p_t = F.softmax(ft[0].reshape(c, h * w).float() / tau, dim=1)
            logp_s = F.log_softmax(fs[0].reshape(c, h * w).float() / tau, dim=1)
            kl = (p_t * (p_t.clamp_min(1e-30).log() - logp_s)).sum(1)
            k = min(top, c)
            top_kl, chans = kl.topk(k)
            fig, axes = panel_figure(
                2, k, f'CWD {self.levels[lvl]} (stride {self.strides[lvl]}, {h}x{w}, C={c}; '
                f'{source}): spatial softmax(F_c/tau) of the {k} channels with the largest '
                f'KL(p_T||p_S)\nmean KL over channels {kl.mean():.4g}; teacher top row, student '
                'bottom, each pair on one scale')
            for j, (ch, val) in enumerate(zip(chans.tolist(), top_kl.tolist())):
                pt = p_t[ch].reshape(h, w).numpy()
                ps = logp_s[ch].exp().reshape(h, w).numpy()
                norm = Normalize(0.0, max(float(pt.max()), float(ps.max()), 1e-12))
                show_map(axes[0, j], fig, pt, self.pad_hw,
                         f'teacher ch {ch}: KL {val:.3g}\nmax p {pt.max():.3g}', norm=norm)
                show_map(axes[1, j], fig, ps, self.pad_hw,
                         f'student ch {ch}\nmax p {ps.max():.3g}', norm=norm)
                for ax in axes[:, j]:
                    draw_boxes(ax, self.gt_np, lw=0.6)
            path = save_figure(fig, self._file(f'06_{key}.png'))
            self.record(key, path, grid=[2, k], level=self.levels[lvl],
                        stride=self.strides[lvl], tau=tau, channels=chans.tolist(),
                        kl=top_kl.tolist(), mean_kl=float(kl.mean()))
            made.append(key)
        return made


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distillation config (mmkd.DetectionDistill)')
    parser.add_argument('--teacher-ckpt', help='teacher weights (default: the config\'s)')
    parser.add_argument('--student-ckpt', help='training checkpoint of CONFIG or an exported '
                        'student (default: the student\'s initial weights)')
    parser.add_argument('--image', required=True, help='the image to look at')
    parser.add_argument('--ann', help='COCO json with the image\'s GT boxes (default: the '
                        'config\'s val annotation file)')
    parser.add_argument('--out', required=True, help='directory for the PNGs')
    parser.add_argument('--cwd-top', type=int, default=4,
                        help='channels shown per level in the CWD pictures')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides merged into the config')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not osp.isfile(args.image):
        raise SystemExit(f'--image {args.image!r} does not exist')
    os.makedirs(args.out, exist_ok=True)
    teacher_ckpt = resolve_teacher_ckpt(cfg, args.teacher_ckpt)
    model = build_model(cfg, teacher_ckpt, args.student_ckpt)
    ann = args.ann or default_ann_file(cfg)
    inputs, sample, canvas, names, has_gt, reason = load_sample(cfg, model, args.image, ann)
    vis = Visualizer(model, cfg, inputs, sample, canvas, names, args.image, args.out)
    vis.summary.update(config=args.config, teacher_ckpt=teacher_ckpt,
                       student_ckpt=args.student_ckpt, ann_file=ann)
    if not has_gt:
        vis.summary['gt_missing'] = reason
    print(f'{osp.basename(args.image)}: {len(vis.gt_np)} GT boxes, levels {vis.levels}')
    vis.image_gt()
    vis.feature_energy()
    vis.fgd()
    vis.defeat()
    vis.ld()
    vis.cwd(args.cwd_top)
    with open(osp.join(args.out, 'summary.json'), 'w') as f:
        json.dump(vis.summary, f, indent=1)
    print(f'{len(vis.summary["pictures"])} pictures in {args.out} (summary.json); skipped: '
          f'{sorted(vis.summary["skipped"]) or "none"}')
    return vis.summary


if __name__ == '__main__':
    main()
