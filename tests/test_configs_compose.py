"""Composing methods: each method's distiller pieces, merged into another method's config.

mmengine refuses two bases that define the same key (``model``), so two method configs cannot
both be bases. A method's distiller is therefore also a named variable in
``configs/_base_/distillers/<method>.py``; a composed config inherits one method's config and
the other's pieces, and merges the pieces into its distiller (README, "Compose methods").
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import mmkd  # noqa: F401
from _toy import REPO
from test_configs_layout import readme_block, save_as_printed, unscoped

PIECES = sorted(glob.glob(osp.join(REPO, 'configs/_base_/distillers/*.py')))
#: method config -> (its set-up's pieces variable)
METHOD_PIECES = {
    'cwd/cwd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'cwd_distiller',
    'defeat/defeat_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py': 'defeat_distiller',
    'fgd/fgd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'fgd_distiller',
    'fgd/fgd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    'fgd_two_stage_distiller',
    'mgd/mgd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'mgd_distiller',
    'mgd/mgd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    'mgd_two_stage_distiller',
    'ld/ld_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'ld_distiller',
    'pkd/pkd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'pkd_distiller',
    'pkd/pkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    'pkd_two_stage_distiller',
    'reviewkd/reviewkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    'reviewkd_distiller',
    'dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py': 'dkd_distiller',
    'crosskd/crosskd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py': 'crosskd_distiller',
    'crosskd/crosskd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'crosskd_distiller',
    'bckd/bckd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py': 'bckd_distiller',
    'bckd/bckd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py': 'bckd_distiller',
}
#: composed config -> (the method config it inherits, the pieces variable merged in)
COMPOSED = {
    'crosskd/crosskd-pkd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py':
    ('crosskd/crosskd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py', 'pkd_all_levels_distiller'),
    'crosskd/crosskd-pkd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py':
    ('crosskd/crosskd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', 'pkd_all_levels_distiller'),
    'reviewkd/reviewkd-dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py':
    ('reviewkd/reviewkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
     'dkd_distiller'),
}
PARTS = ('student_recorders', 'teacher_recorders', 'connectors', 'distill_losses',
         'loss_forward_mappings')


def load(rel):
    return Config.fromfile(osp.join(REPO, 'configs', rel))


def all_pieces():
    """Every pieces variable of every pieces file, as plain dicts."""
    found = {}
    for path in PIECES:
        cfg = Config.fromfile(path).to_dict()
        found.update({k: v for k, v in cfg.items() if k.endswith('_distiller')})
    return found


@pytest.mark.parametrize('config', list(METHOD_PIECES))
def test_a_method_config_is_its_pieces(config):
    cfg = load(config)
    distiller = unscoped(cfg.model.distiller.to_dict())
    pieces = all_pieces()[METHOD_PIECES[config]]
    assert distiller == unscoped(dict(type='DetectionDistiller', **pieces))


@pytest.mark.parametrize('config', list(COMPOSED))
def test_a_composed_config_is_a_method_config_plus_the_other_pieces(config):
    method, variable = COMPOSED[config]
    composed, alone = load(config).to_dict(), load(method).to_dict()
    pieces = all_pieces()[variable]
    distiller = composed['model'].pop('distiller')
    base_distiller = alone['model'].pop('distiller')
    for part in PARTS:  # the union of both, no entry of one replaced by the other
        mine, theirs = base_distiller.get(part, {}), pieces.get(part, {})
        assert distiller.get(part, {}) == {**mine, **theirs}, part
        assert all(mine[k] == theirs[k] for k in set(mine) & set(theirs)), part
    # everything else (student, teacher, data, schedule, optimizer) is the method config's
    assert composed['model'] == alone['model']
    for key in ('train_dataloader', 'train_cfg', 'param_scheduler', 'optim_wrapper'):
        assert composed[key] == alone[key], key


def test_pieces_use_a_name_only_for_one_thing():
    """Merging is key by key, so a recorder name used by two methods must mean the same in
    both, and a connector or loss name must belong to one method (whose set-ups, e.g. MGD's
    one- and two-stage pieces, may set it differently); otherwise one would silently replace
    the other."""
    seen = {}
    for variable, pieces in all_pieces().items():
        for part in PARTS:
            for name, value in pieces.get(part, {}).items():
                if part in ('connectors', 'distill_losses', 'loss_forward_mappings'):
                    owner = seen.setdefault((part, name), variable)
                    assert owner.split('_')[0] == variable.split('_')[0], (part, name)
                else:
                    assert seen.setdefault((part, name), value) == value, (part, name)


def test_two_method_configs_cannot_both_be_bases(tmp_path):
    """Why the pieces exist: mmengine's duplicate-key error."""
    path = tmp_path / 'both.py'
    path.write_text(
        f"_base_ = ['{REPO}/configs/reviewkd/"
        "reviewkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py', "
        f"'{REPO}/configs/dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']\n")
    with pytest.raises(KeyError, match='Duplicate key'):
        Config.fromfile(str(path))


def test_readme_composition_merges_as_printed(tmp_path):
    block = readme_block('# configs/my/reviewkd-dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-')
    cfg = Config.fromfile(save_as_printed(block, tmp_path))
    shipped = load(list(COMPOSED)[-1])
    assert unscoped(cfg.model.to_dict()) == unscoped(shipped.model.to_dict())
