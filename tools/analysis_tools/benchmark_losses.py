"""Time forward + backward of mmkd's distillation losses against reference implementations.

Realistic detection shapes: batch 2, 256 channels, the FPN levels of an 800 x 1333 image padded
to 800 x 1344 (one-stage P3-P7, strides 8-128; two-stage P2-P6, strides 4-64), 30 GT boxes per
image. Each row is timed against

* ``oracle``: the plain per-image / per-box re-computation of the official code used by the
  tests (``tests/oracles.py``), and
* ``mmrazor``: mmrazor 1.0's own loss, where mmrazor has one (CWD, MGD, PKD).

CPU only; best of at least ``--repeats`` interleaved runs after one warm-up (more rounds
for cheap rows). Timing is printed, never asserted.

    python tools/analysis_tools/benchmark_losses.py [--repeats 3] [--threads N] [--skip-connectors]
"""
import argparse
import importlib.util
import os.path as osp
import time
from typing import Dict, List, Optional

import torch

import mmkd  # noqa: F401  (patches mmrazor's imports first)
from mmengine.structures import InstanceData

from mmkd.models.connectors import MGDConnector
from mmkd.models.losses import (ChannelWiseDivergence, DeFeatLoss, FGDLoss, HCLLoss, MGDLoss,
                                PKDLoss)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_oracles():
    """The tests' reference implementations (``tests/oracles.py``), loaded by file path."""
    spec = importlib.util.spec_from_file_location('oracles', osp.join(ROOT, 'tests', 'oracles.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oracles = _load_oracles()

BATCH, CHANNELS, BOXES = 2, 256, 30
IMG_HW, PAD_HW = (800, 1333), (800, 1344)


def level_shapes(strides):
    return [(-(-PAD_HW[0] // s), -(-PAD_HW[1] // s)) for s in strides]


ONE_STAGE = level_shapes((8, 16, 32, 64, 128))
TWO_STAGE = level_shapes((4, 8, 16, 32, 64))


def make_inputs(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    S = [torch.randn(BATCH, CHANNELS, h, w, generator=gen).requires_grad_() for h, w in shapes]
    T = [torch.randn(BATCH, CHANNELS, h, w, generator=gen) for h, w in shapes]
    return S, T


def make_gt(seed=0):
    gen = torch.Generator().manual_seed(seed)
    insts = [InstanceData(bboxes=oracles.random_boxes(BOXES, IMG_HW[0], IMG_HW[1], gen),
                          labels=torch.zeros(BOXES, dtype=torch.long)) for _ in range(BATCH)]
    metas = [dict(img_shape=IMG_HW, batch_input_shape=PAD_HW, pad_shape=PAD_HW)
             for _ in range(BATCH)]
    return insts, metas


def total(out) -> torch.Tensor:
    return sum(out.values()) if isinstance(out, dict) else out


def time_impls(impls: Dict[str, tuple], repeats: int, budget_s: float = 3.0,
               max_rounds: int = 20) -> Dict[str, float]:
    """Best seconds of forward + backward per implementation, after one warm-up run each.

    The implementations are interleaved (one run of each per round), so background load hits
    them alike, and the minimum over rounds is the least disturbed run. Cheap rows get more
    rounds (up to ``budget_s`` seconds, at most ``max_rounds``), expensive ones ``repeats``.
    """

    def run(fn, leaves, modules):
        for leaf in leaves:
            leaf.grad = None
        for m in modules:
            m.zero_grad(set_to_none=True)
        start = time.perf_counter()
        total(fn()).backward()
        return time.perf_counter() - start

    warm = sum(run(*impl) for impl in impls.values())  # warm-up round
    rounds = max(repeats, min(max_rounds, int(budget_s / max(warm, 1e-6))))
    times: Dict[str, List[float]] = {name: [] for name in impls}
    for _ in range(rounds):
        for name, impl in impls.items():
            times[name].append(run(*impl))
    return {name: min(t) for name, t in times.items()}


def razor(name: str, module: str = 'mmrazor.models.losses'):
    try:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name)
    except Exception as e:  # pragma: no cover - reported in the table
        print(f'  (mmrazor {name} unavailable: {e})')
        return None


def cases(skip_connectors: bool):
    """Yield (name, levels, {impl: (fn, leaves, modules)})."""
    insts, metas = make_gt()
    gt_boxes = [i.bboxes for i in insts]

    # CWD, P3-P7
    S, T = make_inputs(ONE_STAGE, 1)
    cwd = ChannelWiseDivergence(tau=1.0, loss_weight=10.0)
    impls = {
        'mmkd': (lambda: cwd(S, T), S, []),
        'oracle': (lambda: sum(oracles.cwd_oracle(s, t, 1.0, 10.0) for s, t in zip(S, T)), S, []),
    }
    RazorCWD = razor('ChannelWiseDivergence')
    if RazorCWD is not None:
        rcwd = RazorCWD(tau=1.0, loss_weight=10.0)
        impls['mmrazor'] = (lambda: sum(rcwd(s, t) for s, t in zip(S, T)), S, [])
    yield 'CWD (KL)', 'P3-P7', impls

    # FGD, P3-P7, one FGDLoss per level (align none, GcBlocks included)
    S, T = make_inputs(ONE_STAGE, 2)
    fgds = [FGDLoss(CHANNELS, CHANNELS, box_scale='img_shape') for _ in S]
    params = [dict(m.named_parameters()) for m in fgds]

    def fgd_mmkd():
        return sum(total(m(s, t, insts, metas)) for m, s, t in zip(fgds, S, T))

    def fgd_ref():
        return sum(
            total(oracles.fgd_oracle(s, t, gt_boxes, metas, p, box_scale='img_shape'))
            for p, s, t in zip(params, S, T))

    yield 'FGD (4 terms)', 'P3-P7', {
        'mmkd': (fgd_mmkd, S, fgds),
        'oracle': (fgd_ref, S, fgds),
    }

    # MGD loss alone, P3-P7 (inputs standing for the connector output)
    S, T = make_inputs(ONE_STAGE, 3)
    mgd = MGDLoss(2e-5)
    impls = {
        'mmkd': (lambda: mgd(S, T), S, []),
        'oracle': (lambda: sum(
            torch.nn.MSELoss(reduction='sum')(s, t) / s.shape[0] * 2e-5 for s, t in zip(S, T)),
                   S, []),
    }
    RazorMGD = razor('MGDLoss')
    if RazorMGD is not None:
        rmgd = RazorMGD(2e-5)
        impls['mmrazor'] = (lambda: sum(rmgd(s, t) for s, t in zip(S, T)), S, [])
    yield 'MGD loss', 'P3-P7', impls

    if not skip_connectors:
        # MGD connector (mask + 2 x conv3x3) + loss, P3-P7
        conns = [MGDConnector(CHANNELS, CHANNELS) for _ in S]
        cparams = [dict(c.named_parameters()) for c in conns]

        def mgd_ref():
            out = 0
            for p, s, t in zip(cparams, S, T):
                n, _, h, w = s.shape
                mat = torch.where(torch.rand((n, 1, h, w)) > 1 - 0.65, 0, 1)
                out = out + oracles.mgd_oracle(s, t, mat, p, 2e-5)
            return out

        impls = {
            'mmkd': (lambda: mgd([c(s) for c, s in zip(conns, S)], T), S, conns),
            'oracle': (mgd_ref, S, conns),
        }
        RazorConn = razor('MGDConnector', 'mmrazor.models.architectures.connectors')
        if RazorMGD is not None and RazorConn is not None:
            rconns = [RazorConn(CHANNELS, CHANNELS) for _ in S]
            for rc, c in zip(rconns, conns):
                rc.load_state_dict(c.state_dict())
            impls['mmrazor'] = (lambda: sum(rmgd(rc(s), t) for rc, s, t in zip(rconns, S, T)),
                                S, rconns)
        yield 'MGD connector+loss', 'P3-P7', impls

    # DeFeat neck loss, P2-P6 (the 3x3 adaptation is the same conv in both; timed without)
    S, T = make_inputs(TWO_STAGE, 4)
    defeat = DeFeatLoss(CHANNELS, CHANNELS, adapt=False)
    yield 'DeFeat neck (no adapt)', 'P2-P6', {
        'mmkd': (lambda: defeat(S, T, insts, metas), S, []),
        'oracle': (lambda: oracles.defeat_oracle(S, T, gt_boxes, {}), S, []),
    }

    # ReviewKD HCL, P2-P6 (inputs standing for the ABF connector output)
    S, T = make_inputs(TWO_STAGE, 5)
    hcl = HCLLoss(1.0)
    yield 'ReviewKD HCL', 'P2-P6', {
        'mmkd': (lambda: hcl(S, T), S, []),
        'oracle': (lambda: oracles.hcl_oracle(S, T), S, []),
    }

    # PKD, P3-P7
    S, T = make_inputs(ONE_STAGE, 6)
    pkd = PKDLoss(loss_weight=10.0)
    impls = {'mmkd': (lambda: pkd(S, T), S, [])}
    RazorPKD = razor('PKDLoss')
    if RazorPKD is not None:
        rpkd = RazorPKD(loss_weight=10.0)
        impls['mmrazor'] = (lambda: rpkd(S, T), S, [])
    yield 'PKD', 'P3-P7', impls


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--skip-connectors', action='store_true',
                        help='skip the MGD connector row (two 3x3 convs per level)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, '
          f'{CHANNELS} ch, {BOXES} boxes/img, input {IMG_HW} padded to {PAD_HW}; '
          f'best of >= {args.repeats} interleaved fwd+bwd runs after 1 warm-up')
    header = f"{'loss':<24}{'levels':<8}{'mmkd ms':>10}{'oracle ms':>11}{'mmrazor ms':>12}" \
             f"{'oracle/mmkd':>13}{'mmrazor/mmkd':>14}"
    print(header)
    print('-' * len(header))
    start = time.perf_counter()
    for name, levels, impls in cases(args.skip_connectors):
        res = time_impls(impls, args.repeats)

        def ms(key):
            return f'{res[key] * 1e3:.1f}' if key in res else '-'

        def ratio(key):
            return f'{res[key] / res["mmkd"]:.2f}x' if key in res else '-'

        print(f'{name:<24}{levels:<8}{ms("mmkd"):>10}{ms("oracle"):>11}{ms("mmrazor"):>12}'
              f'{ratio("oracle"):>13}{ratio("mmrazor"):>14}', flush=True)
    print(f'total benchmark time {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
