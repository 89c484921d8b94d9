"""mmkd's registries: children of mmrazor's (which are children of mmengine's), one per kind.

Because they are children, ``type='mmkd.PKDLoss'`` builds anywhere mmrazor or mmdet builds a
model (e.g. inside ``ConfigurableDistiller``), and ``default_scope='mmkd'`` finds mmdet and
mmrazor modules through the parent chain. ``locations`` lets mmengine import mmkd's modules
lazily when a config only names the scope.

There is one registry for every kind mmrazor has, also those mmkd adds nothing to, as in every
OpenMMLab package. While mmengine builds anything under the scope ``'mmkd'`` (the model configs
say ``_scope_='mmkd'``), every registry lookup inside that build looks for an ``'mmkd'`` node in
that kind's tree; a kind without one logged "Failed to search registry with scope "mmkd" in the
"weight initializer" registry tree" on every build that initialised weights (e.g. the teacher's
``init_weights()`` inside ``DetectionDistill.__init__``), before falling back to mmengine's.
"""
from mmengine.registry import Registry
from mmrazor import registry as mmrazor_registry


def _child_of(parent: Registry, locations=()) -> Registry:
    """The ``'mmkd'`` registry under one of mmrazor's; ``locations``: where mmkd registers."""
    return Registry(parent.name, parent=parent, scope='mmkd', locations=list(locations))


MODELS = _child_of(mmrazor_registry.MODELS, ['mmkd.models'])
TASK_UTILS = _child_of(mmrazor_registry.TASK_UTILS, ['mmkd.models'])
HOOKS = _child_of(mmrazor_registry.HOOKS, ['mmkd.engine'])
LOOPS = _child_of(mmrazor_registry.LOOPS, ['mmkd.engine'])
DATASETS = _child_of(mmrazor_registry.DATASETS, ['mmkd.datasets'])
# kinds mmkd registers nothing of (yet): they exist so that lookups under the scope find a node
WEIGHT_INITIALIZERS = _child_of(mmrazor_registry.WEIGHT_INITIALIZERS)
RUNNERS = _child_of(mmrazor_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child_of(mmrazor_registry.RUNNER_CONSTRUCTORS)
MODEL_WRAPPERS = _child_of(mmrazor_registry.MODEL_WRAPPERS)
OPTIMIZERS = _child_of(mmrazor_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child_of(mmrazor_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child_of(mmrazor_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child_of(mmrazor_registry.PARAM_SCHEDULERS)
DATA_SAMPLERS = _child_of(mmrazor_registry.DATA_SAMPLERS)
TRANSFORMS = _child_of(mmrazor_registry.TRANSFORMS)
METRICS = _child_of(mmrazor_registry.METRICS)
VISUALIZERS = _child_of(mmrazor_registry.VISUALIZERS)
VISBACKENDS = _child_of(mmrazor_registry.VISBACKENDS)

#: every registry above
ALL_REGISTRIES = (MODELS, TASK_UTILS, HOOKS, LOOPS, DATASETS, WEIGHT_INITIALIZERS, RUNNERS,
                  RUNNER_CONSTRUCTORS, MODEL_WRAPPERS, OPTIMIZERS, OPTIM_WRAPPERS,
                  OPTIM_WRAPPER_CONSTRUCTORS, PARAM_SCHEDULERS, DATA_SAMPLERS, TRANSFORMS, METRICS,
                  VISUALIZERS, VISBACKENDS)


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


for _registry in ALL_REGISTRIES:
    _reachable_from_root(_registry)
