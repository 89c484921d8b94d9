"""What distillation costs on top of training the student, per method.

    python tools/analysis_tools/benchmark_distill.py [--methods pkd ld ...] [--repeats 5]
        [--warmup 2] [--size 128] [--batch 2] [--threads 1] [--no-sizes] [--device cuda]
        [--json PATH]

For every ``configs/toy/<method>_*_toy.py`` whose model is a ``DetectionDistill`` (or those named
by ``--methods``), with the same seed and the same small batch (random images, two boxes each) on
``--device`` (default: the CPU), it times in one process, interleaved round by round (median over
``--repeats`` after ``--warmup`` rounds; on a GPU each step ends with a synchronisation):

  (a) one student-only training step: ``student.loss`` -> backward -> SGD step;
  (b) one teacher forward as deep as the method needs: ``algo._run_teacher`` under ``no_grad``
      inside the teacher recorders, exactly as the distillation step runs it, plus, for RoI
      methods (DKD, DeFeat head), the teacher's RoI head on the student's sampled RoIs;
  (c) one distillation training step: ``algo.loss`` (teacher + student + distillation losses)
      -> backward -> SGD step over student and connectors.

and prints c / (a + b) (target <= 1.10; 1.0 means the losses and connectors cost nothing).
A loss that runs part of the teacher's head itself (CrossKD: the teacher's last conv and
predictors on the student's features, with gradients) is timed in (c), not in (b): the teacher
head runs twice per step, and c / (a + b) shows what that costs.
``--json PATH`` also writes the rows (one dict per method) as JSON.

Memory on a GPU: the growth of ``torch.cuda.max_memory_allocated`` during one step. On the CPU:
peak resident-set growth during one step of (a) and of (c), read from Linux's
``VmHWM`` after resetting it with ``/proc/self/clear_refs`` (value 5) just before the step. The
script re-executes itself with glibc's mmap threshold fixed at 64 KiB
(``MALLOC_MMAP_THRESHOLD_``), so that tensors freed by one step go back to the OS and do not
hide the next step's peak. (tracemalloc does not see torch's allocations; ``ru_maxrss`` only
grows over a process's life.)

Checkpoint sizes (``--no-sizes`` skips them): for each method's real COCO config (ResNeXt-101
teacher -> ResNet-18 student, ``configs/<method>/..._x101-32x4d-..._1x_coco.py``), built with
``teacher_ckpt=None``, the bytes ``torch.save`` writes for a training checkpoint (state_dict of
the algorithm = student + connectors, plus SGD momentum for every trainable parameter, as
mmengine writes it), a plain student checkpoint (state_dict only), and the training checkpoint
with the frozen teacher's weights added (mmrazor's default). Target: training / with-teacher
<= 0.35.
"""
import argparse
import glob
import io
import os
import os.path as osp
import re
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_MALLOC = {'MALLOC_MMAP_THRESHOLD_': '65536', 'MALLOC_TRIM_THRESHOLD_': '131072'}
if __name__ == '__main__' and any(os.environ.get(k) != v for k, v in _MALLOC.items()):
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **_MALLOC))

import torch  # noqa: E402

import mmkd  # noqa: E402,F401
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import set_random_seed  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--methods', nargs='*', help='method prefixes (default: every toy config)')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--size', type=int, default=128, help='square image size')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    p.add_argument('--no-sizes', action='store_true', help='skip the checkpoint sizes')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--json', help='also write the rows to this JSON file')
    args = p.parse_args()
    if args.device != 'cpu' and not torch.cuda.is_available():
        p.error(f'--device {args.device}: torch sees no CUDA GPU; use --device cpu')
    return args


def discover(methods):
    found = []
    for path in sorted(glob.glob(osp.join(REPO, 'configs/toy/*_toy.py'))):
        name = osp.basename(path)
        method = re.split(r'[_]', name)[0]
        if methods and method not in methods and method.split('-')[0] not in methods:
            continue
        cfg = Config.fromfile(path)
        if str(cfg.model.get('type', '')).endswith('DetectionDistill'):
            found.append((method, path))
    return found


def real_config(toy_path: str):
    """configs/toy/<m>_<toy teacher>_<student>_toy.py ->
    configs/<m>/<m>_<COCO teacher>_<student>_1x_coco.py (the COCO pairs' teachers: GFL and
    Faster R-CNN ResNeXt-101-32x4d)."""
    name = osp.basename(toy_path).replace('gfl_r18-fpn-20e', 'gfl_x101-32x4d-fpn')
    name = name.replace('faster-rcnn_r18-fpn-20e', 'faster-rcnn_x101-32x4d-fpn')
    name = name.replace('_toy.py', '_1x_coco.py')
    folder = re.split(r'[_-]', name)[0]
    path = osp.join(REPO, 'configs', folder, name)
    return path if osp.isfile(path) else None


def make_batch(algo, num_images, size, seed=0):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_images):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0)))
        xy = torch.rand(2, 2, generator=g) * size * 0.5
        wh = torch.rand(2, 2, generator=g) * size * 0.4 + size / 8
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                      labels=torch.randint(0, 4, (2, ), generator=g))
        samples.append(s)
    inputs = [torch.randint(0, 255, (3, size, size), generator=g).float() for _ in samples]
    data = algo.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
    return data['inputs'], data['data_samples']


# ------------------------------------------------------------------ memory
def _status(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_growth(fn, device: str = 'cpu'):
    """Bytes of memory the call adds at its peak (resident memory on the CPU, allocated CUDA
    memory on a GPU), or None where Linux cannot tell."""
    if device != 'cpu':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return max(torch.cuda.max_memory_allocated() - base, 0)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        base = _status('VmRSS')
    except OSError:
        fn()
        return None
    fn()
    return max(_status('VmHWM') - base, 0)


# ------------------------------------------------------------------ one method
def bench_method(path, args):
    init_default_scope('mmdet')
    set_random_seed(0)
    cfg = Config.fromfile(path)
    cfg.model.teacher_ckpt = None
    algo = MODELS.build(cfg.model).to(args.device)
    algo.train()
    inputs, samples = make_batch(algo, args.batch, args.size)  # on the model's device
    student = algo.student
    opt_a = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.0,
                            momentum=0.9, weight_decay=1e-4)
    opt_c = torch.optim.SGD([p for p in algo.parameters() if p.requires_grad], lr=0.0,
                            momentum=0.9, weight_decay=1e-4)

    def step_a():
        loss, _ = student.parse_losses(student.loss(inputs, samples))
        loss.backward()
        opt_a.step()
        opt_a.zero_grad()

    rois = None
    if getattr(algo, 'needs_rois', False):  # RoI methods also run the teacher's RoI head
        with algo._capture_student_rois() as captured, torch.no_grad():
            student.loss(inputs, samples)
        rois = captured['rois']

    def step_b():
        with algo.distiller.teacher_recorders, torch.no_grad():
            feats = algo._run_teacher(inputs, samples)
            if rois is not None:  # on the student's RoIs, as DetectionDistill._roi_data does
                algo.teacher.roi_head._bbox_forward(feats, rois)

    def step_c():
        loss, _ = algo.parse_losses(algo.loss(inputs, samples))
        loss.backward()
        opt_c.step()
        opt_c.zero_grad()

    steps = dict(a=step_a, b=step_b, c=step_c)
    sync = torch.cuda.synchronize if args.device != 'cpu' else (lambda: None)
    times = {k: [] for k in steps}
    for r in range(args.warmup + args.repeats):
        for k, fn in steps.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if r >= args.warmup:
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    mem_a = [peak_growth(step_a, args.device) for _ in range(2)][-1]
    mem_c = [peak_growth(step_c, args.device) for _ in range(2)][-1]
    # the teacher keeps no autograd graph
    graphless = all(not getattr(t, 'requires_grad', False)
                    for r in algo.distiller.teacher_recorders.recorders.values()
                    for t in _tensors(r.data_buffer))
    return dict(med, ratio=med['c'] / (med['a'] + med['b']), mem_a=mem_a, mem_c=mem_c,
                graphless=graphless)


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


def _nbytes(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def checkpoint_sizes(path):
    init_default_scope('mmdet')
    set_random_seed(0)
    cfg = Config.fromfile(path)
    cfg.model.teacher_ckpt = None
    for side in ('architecture', 'teacher'):  # no ImageNet download: sizes need no weights
        cfg.model[side].backbone = dict(cfg.model[side].get('backbone', {}), init_cfg=None)
    algo = MODELS.build(cfg.model)
    params = [p for p in algo.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    for p in params:  # what one training step leaves: a momentum buffer per parameter
        opt.state[p]['momentum_buffer'] = torch.zeros_like(p)
    training = dict(meta=dict(epoch=1, iter=1), state_dict=algo.state_dict(),
                    optimizer=opt.state_dict())
    student = _nbytes(dict(state_dict=algo.student.state_dict()))
    train = _nbytes(training)
    training['state_dict'] = dict(training['state_dict'], **{
        f'teacher.{k}': v for k, v in algo.teacher.state_dict().items()})
    with_teacher = _nbytes(training)
    return dict(train=train, student=student, with_teacher=with_teacher)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import warnings
    warnings.filterwarnings('ignore')
    rows = []
    sizes_cache = {}
    for method, path in discover(args.methods):
        print(f'# {method}: {osp.relpath(path, REPO)}', flush=True)
        row = dict(method=method, **bench_method(path, args))
        real = real_config(path)
        if not args.no_sizes and real:
            if real not in sizes_cache:
                sizes_cache[real] = checkpoint_sizes(real)
            row.update(sizes_cache[real])
        rows.append(row)

    mib = lambda b: f'{b / 2**20:.0f}' if b is not None else 'n/a'  # noqa: E731
    device = (torch.cuda.get_device_name() if args.device != 'cpu'
              else f'CPU, {args.threads} thread(s)')
    print(f'\ntorch {torch.__version__}, {device}, batch {args.batch} x '
          f'{args.size}x{args.size}, median of {args.repeats} after {args.warmup} warm-up rounds')
    print('memory: peak CUDA memory growth during one step (torch.cuda.max_memory_allocated)'
          if args.device != 'cpu' else
          'memory: peak RSS growth during one step (VmHWM after /proc/self/clear_refs=5)')
    print('sizes: torch.save bytes of the COCO X101->R18 config models (teacher_ckpt=None)\n')
    head = ('method', 'a ms', 'b ms', 'c ms', 'c/(a+b)', 'mem a MiB', 'mem c MiB', 'mem c/a',
            'no T graph', 'ckpt MiB', 'student MiB', '+teacher MiB', 'ckpt/+teacher')
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '|'.join('---' for _ in head) + '|')
    for r in rows:
        mem_ratio = (f'{r["mem_c"] / r["mem_a"]:.2f}'
                     if r['mem_a'] and r['mem_c'] is not None else 'n/a')
        size = ([mib(r['train']), mib(r['student']), mib(r['with_teacher']),
                 f'{r["train"] / r["with_teacher"]:.2f}'] if 'train' in r else ['n/a'] * 4)
        cells = [r['method'], f'{r["a"]:.0f}', f'{r["b"]:.0f}', f'{r["c"]:.0f}',
                 f'{r["ratio"]:.3f}', mib(r['mem_a']), mib(r['mem_c']), mem_ratio,
                 'yes' if r['graphless'] else 'NO', *size]
        print('| ' + ' | '.join(cells) + ' |')
    missed = [r['method'] for r in rows if r['ratio'] > 1.10]
    missed_size = [r['method'] for r in rows if 'train' in r and
                   r['train'] / r['with_teacher'] > 0.35]
    print(f'\nratio target c/(a+b) <= 1.10 missed by: {missed or "none"}')
    print(f'checkpoint target <= 0.35 of one with the teacher missed by: {missed_size or "none"}')
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
