"""How the configs fit together: baselines, teachers, schedule and recipe variants, clipping.

A distilled student is only comparable with a baseline trained on the same data with the same
schedule and optimizer; the toy main job and a reader of the READMEs both rely on finding it.
Variants that differ from a tested config in schedule or recipe only are checked here key by
key instead of by another training step.
"""
import copy
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.hub import get_config

import mmkd  # noqa: F401
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from _toy import REPO

#: what must be equal between a distilled config and its baseline, besides the student model
SETTINGS = ('train_dataloader', 'train_cfg', 'param_scheduler', 'optim_wrapper', 'auto_scale_lr')
#: gradient clipping (max_norm) of each method's official code; None: no clipping
OFFICIAL_CLIP = {'cwd': None, 'pkd': None, 'ld': None, 'ld-full': None, 'reviewkd': None,
                 'dkd': None, 'fgd': 35, 'fgd-img-shape': 35, 'mgd': 35, 'defeat': 35,
                 'defeat-full': 35}


def configs(pattern):
    return sorted(glob.glob(osp.join(REPO, 'configs', pattern)))


DISTILL_COCO = [p for p in configs('*/*_coco.py') if '/detectors/' not in p]
DISTILL_TOY = [p for p in configs('toy/*_toy.py') if osp.basename(p).split('_')[0] in OFFICIAL_CLIP]
BASELINES_COCO = configs('detectors/*.py')
BASELINES_TOY = [p for p in configs('toy/*_toy.py') if p not in DISTILL_TOY]


def load(path):
    return Config.fromfile(path).to_dict()


def unscoped(obj):
    """``obj`` without the ``_scope_`` keys that mmdet:: bases add on the way."""
    if isinstance(obj, dict):
        return {k: unscoped(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return [unscoped(v) for v in obj]
    return obj


def settings(cfg, model):
    return unscoped(dict(model=model, **{k: cfg.get(k) for k in SETTINGS}))


def differing_keys(a, b, prefix=''):
    """Dotted paths at which two plain config dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set().union(*[differing_keys(a.get(k), b.get(k), f'{prefix}{k}.')
                             for k in set(a) | set(b)])
    return set() if a == b else {prefix.rstrip('.')}


@pytest.fixture(scope='module')
def baselines():
    return {p: settings(cfg, cfg['model']) for p in BASELINES_COCO + BASELINES_TOY
            for cfg in [load(p)]}


@pytest.mark.parametrize('path', DISTILL_COCO + DISTILL_TOY, ids=lambda p: osp.basename(p)[:-3])
def test_every_distilled_config_has_exactly_one_baseline(path, baselines):
    cfg = load(path)
    student = expand_model_cfg(copy.deepcopy(cfg['model']['architecture']))
    mine = settings(cfg, student.to_dict())
    pool = BASELINES_TOY if path.endswith('_toy.py') else BASELINES_COCO
    matches = [osp.basename(p) for p in pool if baselines[p] == mine]
    assert len(matches) == 1, (f'{osp.basename(path)}: baselines with its student, data, schedule '
                               f'and optimizer: {matches}')


@pytest.mark.parametrize('path', DISTILL_TOY, ids=lambda p: osp.basename(p)[:-3])
def test_toy_teacher_checkpoint_names_the_teacher_config(path):
    """work_dirs/toy/teacher_<name>.pth is trained by configs/toy/<name>.py, the same model."""
    model = load(path)['model']
    stem = osp.basename(model['teacher_ckpt'])[len('teacher_'):-len('.pth')]
    assert model['teacher_ckpt'] == f'work_dirs/toy/teacher_{stem}.pth'
    teacher_cfg = osp.join(REPO, 'configs', 'toy', stem + '.py')
    assert unscoped(expand_model_cfg(copy.deepcopy(model['teacher'])).to_dict()) == \
        unscoped(load(teacher_cfg)['model'])


@pytest.mark.parametrize('path', DISTILL_COCO + DISTILL_TOY + BASELINES_COCO + BASELINES_TOY,
                         ids=lambda p: osp.basename(p)[:-3])
def test_gradient_clipping_follows_the_official_code(path):
    name = osp.basename(path)
    if path in BASELINES_COCO + BASELINES_TOY:
        # teachers trained alone clip on the toy set, as they always have
        expected = 35 if 'clip-grad-35' in name or 'x50-32x4d' in name else None
    else:
        expected = OFFICIAL_CLIP[name.split('_')[0]]
    clip = load(path)['optim_wrapper'].get('clip_grad')
    assert (clip and clip['max_norm']) == expected, (name, clip)


MMDET_2X = unscoped(get_config('mmdet::_base_/schedules/schedule_2x.py').to_dict())
TWO_X = configs('*/*_2x_coco.py')


@pytest.mark.parametrize('path', TWO_X, ids=lambda p: osp.basename(p)[:-3])
def test_a_2x_config_is_its_1x_config_on_mmdet_2x_schedule(path):
    one_x = unscoped(load(path.replace('_2x_coco.py', '_1x_coco.py')))
    two_x = unscoped(load(path))
    assert differing_keys(one_x, two_x) == {'train_cfg.max_epochs', 'param_scheduler'}
    assert two_x['train_cfg']['max_epochs'] == MMDET_2X['train_cfg']['max_epochs'] == 24
    assert two_x['param_scheduler'] == MMDET_2X['param_scheduler']


#: official-recipe variant -> (the config it varies, the keys in which it differs)
VARIANTS = {
    'ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_2xb3-1x_coco.py':
    ('ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py',
     {'train_dataloader.batch_size', 'optim_wrapper.optimizer.lr', 'auto_scale_lr.base_batch_size'}),
    'detectors/gfl_r18-fpn_2xb3-1x_coco.py':
    ('detectors/gfl_r18-fpn_1x_coco.py',
     {'train_dataloader.batch_size', 'optim_wrapper.optimizer.lr', 'auto_scale_lr.base_batch_size'}),
    'fgd/fgd-img-shape_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py':
    ('fgd/fgd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py',
     {f'model.distiller.distill_losses.loss_fgd_fpn{i}.box_scale' for i in range(5)}),
}


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_an_official_recipe_variant_differs_only_where_it_says(variant):
    base, keys = VARIANTS[variant]
    cfg = load(osp.join(REPO, 'configs', variant))
    assert differing_keys(load(osp.join(REPO, 'configs', base)), cfg) == keys
    if '2xb3' in variant:  # LD's R18 recipe: 3 images per GPU on 2 GPUs at lr 0.00375
        assert (cfg['train_dataloader']['batch_size'], cfg['optim_wrapper']['optimizer']['lr'],
                cfg['auto_scale_lr']['base_batch_size']) == (3, 0.00375, 6)
    else:
        assert {v['box_scale'] for v in cfg['model']['distiller']['distill_losses'].values()} == \
            {'img_shape'}


def test_every_config_is_covered():
    """Each config is trained a step (tests/test_configs_feature.py, test_configs_response.py)
    or checked here against one that is."""
    from test_configs_feature import CONFIGS as FEATURE
    from test_configs_response import CONFIGS as RESPONSE
    trained = set(FEATURE) | {osp.join(REPO, p) for p in RESPONSE}
    checked = set(TWO_X) | {osp.join(REPO, 'configs', v) for v in VARIANTS}
    distill = set(DISTILL_COCO + DISTILL_TOY)
    assert distill - trained - checked == set()
