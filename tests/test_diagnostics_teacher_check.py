"""The teacher check: a trained teacher passes with its own validation mAP and is cached; a
teacher with its class order shuffled and a random teacher are stopped, with the causes named.

The trained teacher is the narrow GFL of ``_diagnostics.py`` trained once per module on 8 toy
images for 60 iterations (13 s on a quiet 2-core machine), validated on those same images:
its mAP is clearly positive (0.532 with the 96x96 toy images).
"""
import json
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

import mmkd  # noqa: F401
from mmkd.engine import TeacherCheckError, TeacherCheckHook
from mmkd.engine.hooks import teacher_check
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from _diagnostics import fresh_names, json_log, tiny_distill_cfg, tiny_teacher_cfg
from _toy import REPO

pytestmark = pytest.mark.timeout(600)
TEACHER_EPOCHS = 30  # 2 iterations each


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    """The tiny GFL trained on the 8 images it is validated on; its checkpoint and mAP."""
    init_default_scope('mmdet')
    root = tmp_path_factory.mktemp('teacher_check')
    cfg = fresh_names(tiny_teacher_cfg(str(root), epochs=TEACHER_EPOCHS), 'tc_teacher')
    start = time.time()
    Runner.from_cfg(cfg).train()
    seconds = time.time() - start
    (val, ) = [r for r in json_log(cfg.work_dir) if 'coco/bbox_mAP' in r]
    print(f'tiny teacher: {2 * TEACHER_EPOCHS} iterations, mAP {val["coco/bbox_mAP"]} on its '
          f'8 training images, {seconds:.0f} s')
    assert val['coco/bbox_mAP'] > 0.3, 'the tiny teacher did not learn its 8 images'
    return dict(root=root, ckpt=osp.join(cfg.work_dir, f'epoch_{TEACHER_EPOCHS}.pth'),
                map=val['coco/bbox_mAP'])


def distill_runner(teacher, ckpt, tag, **check):
    cfg = tiny_distill_cfg(str(teacher['root']), teacher_ckpt=str(ckpt))
    # the base's settings, on 8 images; the base's min_map unless given
    cfg.teacher_check = dict(cfg.get('teacher_check') or {}, num_images=8,
                             cache_dir=str(teacher['root'] / 'cache'), **check)
    cfg.work_dir = str(teacher['root'] / tag)
    return Runner.from_cfg(fresh_names(cfg, f'tc_{tag}'))


def log_text(runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def test_distillation_bases_check_the_teacher_by_default():
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/distill/coco_1x.py'))
    assert 'mmkd.TeacherCheckHook' in [h['type'] for h in cfg.custom_hooks]
    assert cfg.teacher_check == dict(num_images=500, min_map=0.05)
    assert 0 < teacher_check.TEACHER_CHECK_DEFAULTS['min_map'] <= cfg.teacher_check.min_map


def test_a_trained_teacher_passes_with_its_own_map_and_is_cached(teacher, monkeypatch):
    runner = distill_runner(teacher, teacher['ckpt'], 'pass')
    TeacherCheckHook().before_train(runner)
    # the same images, pipeline and evaluator as the teacher's own validation: the same number
    assert f'teacher bbox_mAP = {teacher["map"]:.4f} (coco/bbox_mAP on 8 validation image(s)' \
        in log_text(runner)
    with open(osp.join(runner.log_dir, 'teacher_check.json')) as f:
        record = json.load(f)
    assert record['map'] == teacher['map'] and record['passed'] and not record['cached']
    assert record['classes'] == ['circle', 'square', 'triangle', 'cross']

    # a resumed or repeated run finds the result by the weights' hash: no evaluation
    def no_evaluation(*args):
        raise AssertionError('evaluated again')

    monkeypatch.setattr(teacher_check, 'evaluate_teacher', no_evaluation)
    TeacherCheckHook().before_train(runner)
    assert 'cached result of' in log_text(runner)
    with open(osp.join(runner.log_dir, 'teacher_check.json')) as f:
        assert json.load(f)['cached']


def test_a_teacher_with_shuffled_class_order_is_stopped(teacher):
    checkpoint = torch.load(teacher['ckpt'], map_location='cpu', weights_only=False)
    state = checkpoint['state_dict']
    for key in ('bbox_head.gfl_cls.weight', 'bbox_head.gfl_cls.bias'):
        state[key] = state[key][[1, 2, 3, 0]]  # circle predicted as square, ...
    shuffled = teacher['root'] / 'shuffled.pth'
    torch.save(checkpoint, shuffled)
    # The tiny teacher spreads low scores over every class, so shuffled it keeps about 0.05
    # mAP (0.057 at 96x96 images): right at the base's floor, which is meant for COCO-scale
    # teachers. The check is the same at any floor; this one sits far from both numbers.
    min_map = 0.2
    runner = distill_runner(teacher, shuffled, 'shuffled', min_map=min_map)
    with pytest.raises(TeacherCheckError) as error:
        runner.train()  # the base's hooks: the check runs before the first iteration
    message = str(error.value)
    found = float(message.split(' = ')[1].split()[0])
    assert found < teacher['map'] / 4 and found < min_map < teacher['map'] / 2
    assert f'below teacher_check.min_map = {min_map}' in message, message
    for cause in ('wrong checkpoint', 'class order or count', 'input normalisation',
                  'teacher_check = None'):
        assert cause in message, message
    assert runner.iter == 0, 'training started'


def test_a_random_teacher_is_stopped(teacher):
    cfg = tiny_distill_cfg(str(teacher['root']))
    random_teacher = MODELS.build(expand_model_cfg(cfg.model.teacher))
    path = teacher['root'] / 'random.pth'
    torch.save(dict(state_dict=random_teacher.state_dict()), path)
    runner = distill_runner(teacher, path, 'random')
    with pytest.raises(TeacherCheckError, match=r'below teacher_check.min_map = 0.05'):
        runner.train()
    assert runner.iter == 0


def test_skipped_with_none_and_the_cache_key_follows_what_is_evaluated():
    assert teacher_check.teacher_check_settings(Config(dict(teacher_check=None))) is None
    with pytest.raises(KeyError, match='num_image'):
        teacher_check.teacher_check_settings(Config(dict(teacher_check=dict(num_image=5))))
    layer = torch.nn.Linear(3, 2)
    before = teacher_check.weights_digest(layer)
    assert teacher_check.weights_digest(layer) == before
    with torch.no_grad():
        layer.weight[0, 0] += 1e-6
    assert teacher_check.weights_digest(layer) != before

    cfg = Config(dict(model=dict(teacher=None), val_dataloader=dict(dataset=dict(ann_file='a')),
                      val_evaluator=dict(type='CocoMetric')))
    settings = teacher_check.teacher_check_settings(cfg)
    key = teacher_check.cache_key('w', cfg, object(), settings)
    assert key == teacher_check.cache_key('w', cfg, object(), dict(settings, min_map=0.3))
    assert key != teacher_check.cache_key('v', cfg, object(), settings)
    assert key != teacher_check.cache_key('w', cfg, object(), dict(settings, num_images=10))
    cfg.val_dataloader.dataset.ann_file = 'b'
    assert key != teacher_check.cache_key('w', cfg, object(), settings)
