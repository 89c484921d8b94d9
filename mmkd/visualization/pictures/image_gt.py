"""The input image on its padded canvas, with the GT boxes."""
import os.path as osp

from ..distill_scene import DistillScene
from ..drawing import TITLE_FS, draw_boxes
from ..picture import Picture

PANEL_IN = 6.0


def image_gt_picture(scene: DistillScene, out_dir: str) -> Picture:
    """``00_image_gt.png``: what the models see (after the test pipeline) and the GT boxes."""
    pic = scene.picture('image_gt')
    h, w = scene.pad_hw
    ih, iw = scene.sample.metainfo['img_shape'][:2]
    gt = scene.gt_np
    fig, axes = pic.figure(1, 1, f'{osp.basename(scene.image_path)}: input {ih}x{iw} (padded '
                           f'batch {h}x{w}), {len(gt)} GT boxes', PANEL_IN)
    ax = axes[0, 0]
    ax.imshow(scene.canvas, extent=(0, w, h, 0))
    draw_boxes(ax, gt, labels=scene.gt_labels, lw=1.5)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title('GT boxes in input pixels (after the test pipeline\'s resize)'
                 if scene.gt_missing is None else f'no GT boxes: {scene.gt_missing}',
                 fontsize=TITLE_FS)
    pic.save(fig, out_dir, '00_image_gt.png')
    pic.numbers.update(grid=[1, 1], panel_in=PANEL_IN, num_gt=len(gt))
    return pic
