"""Pictures of what each distillation method sees and weighs on one image.

    python tools/analysis_tools/visualize_distill.py CONFIG --image IMG --out DIR
        [--teacher-ckpt PATH] [--student-ckpt PATH] [--ann COCO_JSON] [--pictures NAME ...]
        [--cwd-top K] [--seed S] [--cfg-options KEY=VALUE ...]

Builds the ``mmkd.DetectionDistill`` model of CONFIG (teacher from ``--teacher-ckpt``, else the
config's ``teacher_ckpt``; without one the teacher has random weights and every picture says
so on a red banner), loads ``--student-ckpt`` (a training checkpoint of CONFIG, whose
connectors are loaded too, or an exported student) strictly, runs IMG through the config's test
pipeline and both models, and writes one picture per method (``mmkd.visualization.pictures``):

    00_image_gt  01_feature_energy  02_fgd  03_defeat  04_ld_regions  05_ld_levels
    06_cwd_<level>  07_pkd  08_mgd  09_reviewkd_abf  10_reviewkd_hcl  11_dkd

and ``summary.json`` (the numbers behind every picture, what was left out and why). A method's
picture is made whenever its inputs exist (GT boxes, a GFL/ATSS student for LD, two-stage models
for DKD), whatever the config trains: with the config's loss and connector when it has them,
else with the method's defaults (the title says which; an untrained connector gets a banner).
"""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

import mmkd  # noqa: F401
from mmkd.visualization.distill_scene import DistillScene
from mmkd.visualization.image_sample import default_ann_file
from mmkd.visualization.pictures import PICTURES, make_pictures


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distillation config (mmkd.DetectionDistill)')
    parser.add_argument('--image', required=True, help='the image to look at')
    parser.add_argument('--out', required=True, help='folder for the PNGs and summary.json')
    parser.add_argument('--teacher-ckpt', help='teacher weights (default: the config\'s)')
    parser.add_argument('--student-ckpt', help='training checkpoint of CONFIG or an exported '
                        'student (default: the student\'s initial weights)')
    parser.add_argument('--ann', help='COCO json with the image\'s GT boxes (default: the '
                        'config\'s val annotation file)')
    parser.add_argument('--pictures', nargs='+', choices=list(PICTURES),
                        help='only these pictures (default: all)')
    parser.add_argument('--cwd-top', type=int, default=4,
                        help='channels shown per level in the CWD pictures')
    parser.add_argument('--seed', type=int, default=0, help='seed of the MGD mask')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides merged into the config')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # the current logger: warnings only (not mmengine's per-parameter init report)
    MMLogger.get_instance('visualize_distill', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    ann = args.ann or default_ann_file(cfg)
    scene = DistillScene.from_config(cfg, args.image, args.teacher_ckpt, args.student_ckpt, ann)
    os.makedirs(args.out, exist_ok=True)
    print(f'{osp.basename(args.image)}: {len(scene.gt_np)} GT boxes, levels '
          f'{[lv.name for lv in scene.levels]}; banners: {[t for _, t in scene.banners]}')
    pictures = make_pictures(scene, args.out, args.pictures, args.cwd_top, args.seed)
    summary = dict(config=args.config, image=args.image, ann_file=ann,
                   teacher_ckpt=scene.teacher_ckpt, student_ckpt=scene.student_ckpt,
                   gt_missing=scene.gt_missing,
                   input_hw=list(scene.pad_hw), num_gt=len(scene.gt_np),
                   levels=[lv._asdict() for lv in scene.levels],
                   pictures={k: p.summary() for k, p in pictures.items()})
    with open(osp.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    skipped = sorted(k for k, p in pictures.items() if p.skipped is not None)
    print(f'{sum(len(p.files) for p in pictures.values())} files in {args.out} (summary.json); '
          f'skipped: {skipped or "none"}')
    return summary


if __name__ == '__main__':
    main()
