"""Model configs by reference: ``dict(cfg_path=..., **overrides)``."""
import copy
import os.path as osp
from typing import Union

from mmengine.config import Config, ConfigDict

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def resolve_cfg_path(path: str) -> str:
    """Find a config file: absolute, relative to the working directory, or to mmkd's repo."""
    for candidate in (path, osp.join(REPO_ROOT, path)):
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    raise FileNotFoundError(
        f'model config {path!r} not found (looked in {osp.abspath(path)} and '
        f'{osp.join(REPO_ROOT, path)}). Give a path relative to the mmkd repository, e.g. '
        "'configs/detectors/gfl_r18-fpn_1x_coco.py', or an absolute one.")


def expand_model_cfg(cfg: Union[dict, ConfigDict]) -> Union[dict, ConfigDict]:
    """Expand ``dict(cfg_path=PATH, **overrides)`` into the full model dict of that config.

    ``PATH`` is a config file (its ``model``, with its ``data_preprocessor`` if the model has
    none) or ``'mmdet::gfl/gfl_r50_fpn_1x_coco.py'`` for a config packaged with mmdet. The
    remaining keys are merged into it like a config that inherits it, so
    ``dict(cfg_path=..., bbox_head=dict(num_classes=4))`` changes just the class count. A dict
    without ``cfg_path`` is returned unchanged. The model is built in the ``mmdet`` scope unless
    it says otherwise.
    """
    if not isinstance(cfg, dict) or 'cfg_path' not in cfg:
        return cfg
    overrides = copy.deepcopy(dict(cfg))
    path = overrides.pop('cfg_path')
    overrides.pop('pretrained', None)  # mmrazor's key; weights come from teacher_ckpt here
    if '::' in path:
        from mmengine.hub import get_config
        loaded = get_config(path)
    else:
        loaded = Config.fromfile(resolve_cfg_path(path))
    if 'model' not in loaded:
        raise KeyError(f'{path} defines no `model`.')
    model = copy.deepcopy(loaded.model)
    if 'data_preprocessor' not in model and 'data_preprocessor' in loaded:
        model['data_preprocessor'] = copy.deepcopy(loaded.data_preprocessor)
    model = ConfigDict(Config._merge_a_into_b(overrides, model.to_dict() if isinstance(
        model, ConfigDict) else model))
    model.setdefault('_scope_', 'mmdet')
    return model
