"""How the configs fit together: baselines, teachers, schedule and recipe variants, clipping.

A distilled student is only comparable with a baseline trained on the same data with the same
schedule and optimizer; the toy main job and a reader of the READMEs both rely on finding it.
Variants that differ from a tested config in schedule or recipe only are checked here key by
key instead of by another training step.
"""
import copy
import glob
import importlib.util
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from mmkd.models.algorithms.model_cfg import expand_model_cfg
from _toy import REPO, tiny_batch

#: what must be equal between a distilled config and its baseline, besides the student model
SETTINGS = ('train_dataloader', 'train_cfg', 'param_scheduler', 'optim_wrapper', 'auto_scale_lr')
#: gradient clipping (max_norm) of each method's official code; None: no clipping
OFFICIAL_CLIP = {'cwd': None, 'pkd': None, 'ld': None, 'ld-full': None, 'reviewkd': None,
                 'dkd': None, 'fgd': 35, 'fgd-img-shape': 35, 'mgd': 35, 'defeat': 35,
                 'defeat-full': 35, 'crosskd': None, 'crosskd-pkd': None, 'bckd': None,
                 'reviewkd-dkd': None}


def configs(pattern):
    return sorted(glob.glob(osp.join(REPO, 'configs', pattern)))


DISTILL_COCO = [p for p in configs('*/*_coco.py') if '/detectors/' not in p]
DISTILL_TOY = [p for p in configs('toy/*_toy.py') if osp.basename(p).split('_')[0] in OFFICIAL_CLIP]
BASELINES_COCO = configs('detectors/*.py')
BASELINES_TOY = [p for p in configs('toy/*_toy.py') if p not in DISTILL_TOY]
#: the toy teachers, trained alone (what the toy distillation configs' teacher_ckpt name)
TOY_TEACHERS = ('gfl_r18-fpn-20e_toy.py', 'faster-rcnn_r18-fpn-20e_toy.py')


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


@pytest.mark.parametrize('path', DISTILL_TOY, ids=lambda p: osp.basename(p)[:-3])
def test_benchmark_distill_finds_the_coco_config_of_a_toy_config(path):
    """tools/analysis_tools/benchmark_distill.py reports checkpoint sizes of the COCO pair that
    a toy config stands for: the same method and student, the COCO teacher."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_distill', osp.join(REPO, 'tools/analysis_tools/benchmark_distill.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    real = tool.real_config(path)
    method, _, student = osp.basename(path)[:-len('_toy.py')].partition('_')
    student = '_'.join(student.split('_')[-2:])
    assert real and osp.isfile(real), path
    assert osp.basename(real).startswith(f'{method}_') and f'_{student}_1x_coco.py' in real
    coco, toy = load(real)['model'], load(path)['model']
    assert expand_model_cfg(coco['architecture'])['backbone']['depth'] == 18
    assert expand_model_cfg(coco['teacher'])['backbone']['type'] == 'ResNeXt'
    assert expand_model_cfg(copy.deepcopy(toy['teacher']))['backbone']['depth'] == 18


@pytest.mark.parametrize('path', DISTILL_COCO + DISTILL_TOY + BASELINES_COCO + BASELINES_TOY,
                         ids=lambda p: osp.basename(p)[:-3])
def test_gradient_clipping_follows_the_official_code(path):
    name = osp.basename(path)
    if path in BASELINES_COCO + BASELINES_TOY:
        # teachers trained alone clip on the toy set, as they always have
        expected = 35 if 'clip-grad-35' in name or name in TOY_TEACHERS else None
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


BATCH_KEYS = {'train_dataloader.batch_size', 'optim_wrapper.optimizer.lr',
              'auto_scale_lr.base_batch_size'}
#: official-recipe variant -> (the config it varies, the keys in which it differs)
VARIANTS = {
    'ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_2xb3-1x_coco.py':
    ('ld/ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', BATCH_KEYS),
    'detectors/gfl_r18-fpn_2xb3-1x_coco.py': ('detectors/gfl_r18-fpn_1x_coco.py', BATCH_KEYS),
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


def readme_block(first_line):
    """The Python block of README.md that starts with ``first_line``."""
    with open(osp.join(REPO, 'README.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, (first_line, len(found))
    return found[0]


def save_as_printed(block, tmp_path):
    """Save a README config where its first line says, beside links to the real configs."""
    rel = block.splitlines()[0].lstrip('# ')
    root = tmp_path / 'configs'
    root.mkdir()
    for entry in os.listdir(osp.join(REPO, 'configs')):
        (root / entry).symlink_to(osp.join(REPO, 'configs', entry))
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_text(block)
    return str(path)


def test_readme_toy_experiment_trains_as_printed(tmp_path):
    cfg = Config.fromfile(save_as_printed(
        readme_block('# configs/my/pkd_gfl_r18-fpn-20e_gfl_r34-fpn_toy.py'), tmp_path))
    # the teacher the README says how to train: its config, its checkpoint name and path
    teacher_cfg = Config.fromfile(osp.join(REPO, 'configs/toy/gfl_r18-fpn-20e_toy.py'))
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    assert cfg.model.teacher_ckpt == 'work_dirs/toy/teacher_gfl_r18-fpn-20e_toy.pth'
    assert f'epoch_{teacher_cfg.train_cfg.max_epochs}.pth {cfg.model.teacher_ckpt}' in readme
    assert teacher_cfg.default_hooks.checkpoint.interval == teacher_cfg.train_cfg.max_epochs

    init_default_scope('mmdet')
    cfg.model.teacher_ckpt = None  # trained by `make toy` or the README's command
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    assert model.student.backbone.depth == 34
    assert model.distiller.distill_losses['loss_pkd_fpn0'].loss_weight == 5
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    losses = model.train_step(tiny_batch(model, num_images=2, size=96), optim_wrapper)
    assert {f'distill.loss_pkd_fpn{i}' for i in range(4)} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(v, before[k]) for k, v in model.student.state_dict().items()
               if v.dtype.is_floating_point)


def test_readme_coco_experiment_merges_as_printed(tmp_path):
    cfg = Config.fromfile(save_as_printed(
        readme_block('# configs/my/pkd_gfl_x101-32x4d-fpn_gfl_r34-fpn_1x_coco.py'), tmp_path))
    student = expand_model_cfg(cfg.model.architecture)
    assert student.backbone.depth == 34
    assert student.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet34')
    assert cfg.model.distiller.distill_losses.loss_pkd_fpn0.loss_weight == 5
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
