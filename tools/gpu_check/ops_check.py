"""mmcv's compiled ops on the GPU against the same ops on the CPU (the ops mmdet's detectors use).

    python tools/gpu_check/ops_check.py --out RECORD.json

``nms`` and ``batched_nms`` (RPN proposals, test-time boxes) must keep the same boxes;
``roi_align`` (Faster R-CNN's RoI features) must agree within 1e-4, forward and backward. The
record (see ``summary.py``) says which op differs, or that none does.
"""
import argparse
import json
import sys

import torch


def compare_ops(device: str = 'cuda', seed: int = 0) -> list:
    """The problems found (empty when every op agrees)."""
    from mmcv.ops import batched_nms, nms, roi_align
    g = torch.Generator().manual_seed(seed)
    problems = []
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(200, 2, generator=g) * 50 + 1], 1)
    scores = torch.rand(200, generator=g)
    labels = torch.randint(0, 4, (200, ), generator=g)
    _, keep_cpu = nms(boxes, scores, 0.5)
    _, keep_gpu = nms(boxes.to(device), scores.to(device), 0.5)
    if not torch.equal(keep_cpu, keep_gpu.cpu()):
        problems.append(f'nms keeps other boxes ({len(keep_gpu)} on the GPU, {len(keep_cpu)} on '
                        'the CPU)')
    cfg = dict(type='nms', iou_threshold=0.6)
    _, keep_cpu = batched_nms(boxes, scores, labels, cfg)
    _, keep_gpu = batched_nms(boxes.to(device), scores.to(device), labels.to(device), cfg)
    if not torch.equal(keep_cpu, keep_gpu.cpu()):
        problems.append('batched_nms keeps other boxes')

    feats = torch.randn(2, 8, 32, 32, generator=g)
    rois = torch.cat([torch.randint(0, 2, (16, 1), generator=g).float(),
                      boxes[:16] / 5], 1)
    out = {}
    for dev in ('cpu', device):
        x = feats.to(dev).requires_grad_()
        y = roi_align(x, rois.to(dev), (7, 7), 1.0, 2, 'avg', True)
        y.square().sum().backward()
        out[dev] = (y.detach().cpu(), x.grad.cpu())
    for name, cpu, gpu in zip(('forward', 'backward'), out['cpu'], out[device]):
        diff = (cpu - gpu).abs().max().item()
        if not diff <= 1e-4:
            problems.append(f'roi_align {name} differs by {diff:.2e}')
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', required=True)
    args = p.parse_args(argv)
    record = dict(check='mmcv ops on the GPU')
    if not torch.cuda.is_available():
        record.update(status='skipped', result='no CUDA GPU visible to torch')
    else:
        try:
            problems = compare_ops()
        except Exception as e:  # e.g. the ops were built without CUDA
            problems = [f'{type(e).__name__}: {str(e).splitlines()[0]}'[:300]]
        record.update(status='FAIL' if problems else 'ok',
                      result='; '.join(problems) or
                      'nms, batched_nms, roi_align (forward, backward) agree with the CPU')
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=1)
    print(f'{record["check"]}: {record["status"]}: {record["result"]}')
    return 0 if record['status'] != 'FAIL' else 1


if __name__ == '__main__':
    sys.exit(main())
