"""mmkd's registries: children of mmrazor's (which are children of mmengine's).

Because they are children, ``type='mmkd.PKDLoss'`` builds anywhere mmrazor or mmdet builds a
model (e.g. inside ``ConfigurableDistiller``), and ``default_scope='mmkd'`` finds mmdet and
mmrazor modules through the parent chain. ``locations`` lets mmengine import mmkd's modules
lazily when a config only names the scope.
"""
from mmrazor.registry import DATASETS as MMRAZOR_DATASETS
from mmrazor.registry import HOOKS as MMRAZOR_HOOKS
from mmrazor.registry import LOOPS as MMRAZOR_LOOPS
from mmrazor.registry import MODELS as MMRAZOR_MODELS
from mmrazor.registry import TASK_UTILS as MMRAZOR_TASK_UTILS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMRAZOR_MODELS, scope='mmkd', locations=['mmkd.models'])
TASK_UTILS = Registry(
    'task util', parent=MMRAZOR_TASK_UTILS, scope='mmkd', locations=['mmkd.models'])
HOOKS = Registry('hook', parent=MMRAZOR_HOOKS, scope='mmkd', locations=['mmkd.engine'])
LOOPS = Registry('loop', parent=MMRAZOR_LOOPS, scope='mmkd', locations=['mmkd.engine'])
DATASETS = Registry('dataset', parent=MMRAZOR_DATASETS, scope='mmkd', locations=['mmkd.datasets'])


def _reachable_from_root(registry: Registry) -> None:
    """Let ``type='mmkd.X'`` resolve from any registry, not only from mmrazor's.

    mmengine looks a scoped type up among the *direct* children of the root registry, and
    mmkd's registries are grandchildren (root -> mmrazor -> mmkd). Listing them among the
    root's children as well makes ``type='mmkd.ToyShapesDataset'`` work where mmdet builds a
    dataset, and ``type='mmkd.DetectionDistill'`` where the runner builds the model. The tree
    itself (mmkd's parent is mmrazor's registry) is unchanged.
    """
    root = registry._get_root_registry()
    root._children.setdefault(registry.scope, registry)


for _registry in (MODELS, TASK_UTILS, HOOKS, LOOPS, DATASETS):
    _reachable_from_root(_registry)
