"""Export the student of a distillation checkpoint as a plain mmdet checkpoint.

    python tools/model_converters/export_student.py work_dirs/pkd/epoch_12.pth student.pth

The result holds only the student's weights under mmdet's key names (no ``architecture.``
prefix, no teacher, connectors or optimizer), so mmdet's own config and test loop load it
without mmkd: ``python mmdet/tools/test.py configs/detectors/gfl_r18-fpn_1x_coco.py student.pth``.
"""
import argparse
import os.path as osp

import torch

import mmkd  # noqa: F401  (allow-lists mmengine's checkpoint types for weights_only loading)
from mmkd.models.algorithms.checkpoint_keys import STUDENT_PREFIX, student_state_dict


def export_student(src: str, dst: str) -> int:
    """Write the student of ``src`` to ``dst``; return the number of tensors written."""
    checkpoint = torch.load(src, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    student = student_state_dict(state)
    if not student:
        raise ValueError(f'{src} has no "{STUDENT_PREFIX}*" weights: it is not a distillation '
                         'checkpoint (a plain detector checkpoint needs no export).')
    meta = dict(checkpoint.get('meta', {}))
    meta = {k: meta[k] for k in ('dataset_meta', 'epoch', 'iter', 'mmengine_version') if k in meta}
    meta['exported_from'] = osp.abspath(src)
    torch.save(dict(state_dict=student, meta=meta), dst)
    return len(student)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('checkpoint', help='distillation training checkpoint')
    parser.add_argument('out', help='where to write the student checkpoint')
    args = parser.parse_args()
    n = export_student(args.checkpoint, args.out)
    print(f'wrote {n} student tensors to {args.out}')


if __name__ == '__main__':
    main()
