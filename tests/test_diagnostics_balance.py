"""Loss balance and schedules: the monitor's numbers and warnings, automatic balancing over a
resume, warm-up and stops in the logged weights.

Runs are tiny PKD runs between two narrow GFLs (``_diagnostics.py``, random teacher, 8 toy
images, batch 4: 2 iterations per epoch) logged every iteration without mmengine's running mean
(``log_processor.window_size=1``), so the JSON log holds each iteration's own values: the
independent record the hook's numbers are checked against.
"""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.engine.hooks.distill_schedule import ScheduleRule, schedule_factors, schedule_rules
from mmkd.engine.hooks.loss_balance import (DETECTION, TOTAL, BalanceWindow, auto_weights,
                                            gradient_norms, loss_balance_settings, summary_rows)
from _diagnostics import fresh_names, json_log, tiny_distill_cfg
from _toy import REPO

pytestmark = pytest.mark.timeout(600)
TERMS = [f'distill.loss_pkd_fpn{i}' for i in range(4)]


def det_sum(line: dict) -> float:
    return sum(v for k, v in line.items() if k.startswith('student.loss'))


def tiny_run(root, tag, epochs, batch_size=4, **settings) -> Config:
    init_default_scope('mmdet')
    cfg = tiny_distill_cfg(str(root), epochs=epochs, batch_size=batch_size)
    cfg.log_processor.window_size = 1  # each iteration's own values in the JSON log
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=-1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.merge_from_dict(settings)
    cfg.work_dir = str(root / tag)
    return fresh_names(cfg, f'bal_{tag}_{osp.basename(str(root))}')


def log_text(runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def by_iter(work_dir) -> dict:
    return {r['iter']: r for r in json_log(work_dir) if 'iter' in r}


# ------------------------------------------------------------------ units
def test_gradient_norms_by_hand():
    a = torch.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    b = torch.tensor([2.0, -1.0, 4.0], requires_grad=True)
    fa, fb = a * 1, b * 1  # the "neck outputs": non-leaf tensors with a graph
    losses = {'student.loss_cls': (fa ** 2).sum(), 'student.loss_bbox': [fb.sum(), fa.mean()],
              'student.acc': torch.tensor(0.5),
              'distill.loss_x': 3 * fb.sum() + fa.sum() * fb.sum(),
              'distill.loss_free': (a * 0).sum().detach()}
    norms = gradient_norms(losses, (fa, fb))
    # detection: d/dfa = 2 fa + 1/4, d/dfb = 1; distill.loss_x: d/dfa = sum(fb), d/dfb = 3 + sum(fa)
    g_det = (2 * a + 0.25, torch.ones(3))
    g_x = (torch.full((2, 2), float(b.detach().sum())),
           torch.full((3, ), 3 + float(a.detach().sum())))

    def norm(gs):
        return math.sqrt(sum(float(g.detach().pow(2).sum()) for g in gs))

    assert norms[DETECTION] == pytest.approx(norm(g_det), rel=1e-6)
    assert norms['distill.loss_x'] == pytest.approx(norm(g_x), rel=1e-6)
    assert norms['distill.loss_free'] == 0.0
    assert norms[TOTAL] == pytest.approx(norm([x + y for x, y in zip(g_det, g_x)]), rel=1e-6)
    assert a.grad is None and b.grad is None, 'parameters must not receive gradients'


def test_window_means_ratios_and_auto_weights_by_hand():
    window = BalanceWindow()
    window.add({'student.loss_cls': 1.0, 'student.loss_bbox': 1.0, 'distill.loss_a': 30.0,
                'distill.loss_b': 0.002}, {'distill.loss_a': 2.0},
               {DETECTION: 1.0, 'distill.loss_a': 3.0, 'distill.loss_b': 0.0, TOTAL: 4.0})
    window.add({'student.loss_cls': 2.0, 'student.loss_bbox': 1.0, 'distill.loss_a': 10.0,
                'distill.loss_b': 0.004}, {'distill.loss_a': 2.0},
               {DETECTION: 3.0, 'distill.loss_a': 5.0, 'distill.loss_b': 0.0, TOTAL: 4.0})
    rows = {r['term']: r for r in summary_rows(window)}
    assert rows[DETECTION]['mean'] == 2.5
    assert rows['distill.loss_a']['mean'] == 20.0 and rows['distill.loss_a']['ratio'] == 8.0
    assert rows['distill.loss_a']['raw_mean'] == 10.0  # trained with multiplier 2
    assert rows['distill.loss_a']['grad_share'] == 1.0 and rows[DETECTION]['grad_share'] == 0.5
    assert rows['distill.loss_b']['ratio'] == pytest.approx(0.0012)
    weights = auto_weights(list(rows.values()), target=1.0, group='term')
    assert weights == pytest.approx({'distill.loss_a': 0.25, 'distill.loss_b': 2.5 / 0.003})
    together = auto_weights(list(rows.values()), target=2.0, group='all')
    assert together == pytest.approx({t: 5.0 / 10.003 for t in ('distill.loss_a',
                                                                'distill.loss_b')})
    restored = BalanceWindow()
    restored.load_state_dict(window.state_dict())
    assert summary_rows(restored) == summary_rows(window)


def test_schedule_rules_and_settings_errors():
    warm, stop = ScheduleRule(warmup_iters=4), ScheduleRule(stop_epoch=2, losses=['loss_b*'])
    bound = [(warm, warm.matching(['loss_a', 'loss_b1'])),
             (stop, stop.matching(['loss_a', 'loss_b1']))]
    assert schedule_factors(bound, 1, 0) == {'loss_a': 0.25, 'loss_b1': 0.25}
    assert schedule_factors(bound, 6, 1) == {'loss_a': 1.0, 'loss_b1': 1.0}
    assert schedule_factors(bound, 7, 2) == {'loss_a': 1.0, 'loss_b1': 0.0}
    with pytest.raises(KeyError, match=r"'loss_c\*' matches no distillation loss; the losses "
                       r"are \['loss_a'\]"):
        ScheduleRule(losses=['loss_c*']).matching(['loss_a'])
    with pytest.raises(ValueError, match='warmup_iters must be an int >= 0'):
        ScheduleRule(warmup_iters=-1)
    assert schedule_rules(Config(dict(distill_schedule=dict(warmup_iters=0)))) == []
    with pytest.raises(KeyError, match='warmup'):
        schedule_rules(Config(dict(distill_schedule=dict(warmup=5))))
    with pytest.raises(ValueError, match="mode must be one of \\('monitor', 'auto'\\)"):
        loss_balance_settings(Config(dict(loss_balance=dict(mode='automatic'))))
    base = Config.fromfile(osp.join(REPO, 'configs/_base_/distill/coco_1x.py'))
    assert 'mmkd.DistillWeightsHook' in [h['type'] for h in base.custom_hooks]
    assert loss_balance_settings(base)['mode'] == 'monitor'  # on by default
    assert schedule_rules(base) == []  # changes nothing by default


# ------------------------------------------------------------------ tiny runs
def test_a_100x_weight_is_named_by_the_monitor(tmp_path):
    cfg = tiny_run(tmp_path, 'x100', epochs=1, loss_balance=dict(warmup_iters=2))
    cfg.model.distiller.distill_losses.loss_pkd_fpn1.loss_weight = 1000  # 100x the config's
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = by_iter(cfg.work_dir)
    det = (det_sum(log[1]) + det_sum(log[2])) / 2
    ratio = (log[1][TERMS[1]] + log[2][TERMS[1]]) / 2 / det
    text = log_text(runner)
    warnings = [line for line in text.splitlines() if 'WARNING - loss balance:' in line]
    assert len(warnings) == 1, warnings  # the other levels stay within [0.01, 10]
    assert f'distill.loss_pkd_fpn1 is {ratio:.3g}x the summed detection losses' in warnings[0]
    assert f'loss_pkd_fpn1.loss_weight = 1000 -> {1000 / ratio:.3g}' in warnings[0]
    assert "loss_balance = dict(mode='auto')" in warnings[0]
    # its table: every level's mean and ratio, the gradient shares
    with open(osp.join(runner.log_dir, 'loss_balance.json')) as f:
        rows = {r['term']: r for r in json.load(f)['rows']}
    for term in TERMS:
        mean = (log[1][term] + log[2][term]) / 2
        assert rows[term]['mean'] == pytest.approx(mean, rel=1e-6)
        assert rows[term]['ratio'] == pytest.approx(mean / det, rel=1e-6)
    assert rows[TERMS[1]]['grad_share'] > max(rows[t]['grad_share'] for t in TERMS if
                                              t != TERMS[1])


def test_auto_balance_reaches_the_target_and_resumes_with_the_same_weights(tmp_path):
    # weights fixed from the window's means hold the target while the losses stay as they were:
    # here one batch of all 8 images per epoch (no batch-to-batch noise) and a small lr. A term
    # that keeps shrinking after the window drifts below the target: at lr 0.002 the deepest PKD
    # level loses 7% per iteration and ends 20% below it after 3 iterations
    settings = dict(loss_balance=dict(mode='auto', warmup_iters=3, target=1.0),
                    optim_wrapper=dict(optimizer=dict(lr=2e-4)))
    straight = Runner.from_cfg(tiny_run(tmp_path, 'straight', 6, 8, **settings))
    straight.train()
    log = by_iter(straight.work_dir)
    det = sum(det_sum(log[i]) for i in (1, 2, 3)) / 3
    for term in TERMS:
        # chosen from iterations 1-3 (multiplier 1 there) ...
        chosen = det / (sum(log[i][term] for i in (1, 2, 3)) / 3)
        weight = term.replace('distill.', 'distill_weight.')
        assert [log[i][weight] for i in (1, 2, 3)] == [1.0, 1.0, 1.0]
        assert [log[i][weight] for i in (4, 5, 6)] == pytest.approx([chosen] * 3, rel=1e-6)
        # ... the term is then the detection losses' size, within 10%, over iterations 4-6
        ratio = sum(log[i][term] for i in (4, 5, 6)) / sum(det_sum(log[i]) for i in (4, 5, 6))
        assert ratio == pytest.approx(1.0, rel=0.1), (term, ratio)
    assert "mmkd's automatic balancing, not from any paper" in log_text(straight)

    # resumed from epoch 2 (iteration 2, inside the measured window): the window continues
    # from the checkpoint, so the same multipliers are chosen at iteration 3 and kept after
    cfg = tiny_run(tmp_path, 'resumed', 6, 8, **settings)
    cfg.resume, cfg.load_from = True, osp.join(straight.work_dir, 'epoch_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    again = by_iter(resumed.work_dir)
    assert sorted(again) == [3, 4, 5, 6]
    for term in TERMS:
        weight = term.replace('distill.', 'distill_weight.')
        for i in (4, 5, 6):
            assert again[i][weight] == pytest.approx(log[i][weight], rel=1e-5), (term, i)

    # resumed after the window: the multipliers come from the checkpoint, nothing is measured
    cfg = tiny_run(tmp_path, 'resumed_late', 6, 8, **settings)
    cfg.resume, cfg.load_from = True, osp.join(straight.work_dir, 'epoch_5.pth')
    late = Runner.from_cfg(cfg)
    late.train()
    text = log_text(late)
    assert 'loss balance: automatic weights from the checkpoint' in text
    assert 'automatic balancing, not from any paper' not in text
    late_log = by_iter(late.work_dir)
    assert sorted(late_log) == [6]
    for term in TERMS:
        weight = term.replace('distill.', 'distill_weight.')
        assert late_log[6][weight] == log[6][weight]


def test_warm_up_and_stops_change_the_logged_weights_at_their_iterations(tmp_path):
    schedule = [dict(warmup_iters=3),  # all losses: 1/3, 2/3, 1, ...
                dict(stop_epoch=2, losses=['loss_pkd_fpn3']),  # 0 in epoch 3 (iterations 5-6)
                dict(stop_iter=5)]  # all losses: 0 from iteration 6
    runner = Runner.from_cfg(tiny_run(tmp_path, 'schedule', epochs=3, distill_schedule=schedule))
    teacher_iters = []
    hub = MessageHub.get_current_instance
    runner.model.teacher.register_forward_pre_hook(
        lambda *args: teacher_iters.append(hub().get_info('iter')))
    runner.model.teacher.backbone.register_forward_pre_hook(
        lambda *args: teacher_iters.append(hub().get_info('iter')))
    runner.train()
    log = by_iter(runner.work_dir)
    expected = {i: [min(1.0, i / 3)] * 4 for i in range(1, 6)}
    expected[5][3] = 0.0
    expected[6] = [0.0] * 4
    for i in range(1, 7):
        got = [log[i][t.replace('distill.', 'distill_weight.')] for t in TERMS]
        assert got == pytest.approx(expected[i], rel=1e-9), (i, got)
    assert [log[i][TERMS[3]] for i in (5, 6)] == [0.0, 0.0]
    assert all(log[6][t] == 0.0 for t in TERMS)
    assert log[6]['loss'] == pytest.approx(det_sum(log[6]), rel=1e-6)
    # every weight 0 from iteration 6: the teacher is not run any more
    assert 'distillation stopped at iteration 6 (epoch 3)' in log_text(runner)
    assert sorted(set(teacher_iters)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize('key,typo,known,off', [
    ('loss_balance', 'warmup', 'warmup_iters', 'loss_balance = None'),
    ('teacher_check', 'min_ap', 'min_map', 'teacher_check = None'),
    ('distill_schedule', 'warmup', 'warmup_iters', None)])
def test_a_misspelt_setting_is_refused_naming_it_and_the_settings(key, typo, known, off):
    from mmkd.engine.hooks.teacher_check import teacher_check_settings
    read = dict(loss_balance=loss_balance_settings, teacher_check=teacher_check_settings,
                distill_schedule=schedule_rules)[key]
    with pytest.raises(KeyError) as err:
        read(Config({key: {typo: 1}}))
    msg = str(err.value)
    assert f"{key}: unknown setting(s) ['{typo}']" in msg and f"'{known}'" in msg
    assert (off in msg) if off else ' or ' not in msg
