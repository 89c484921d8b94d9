from .toy_shapes import TOY_CLASSES, make_toy_shapes  # noqa: F401
from .toy_shapes import ToyShapesDataset  # noqa: F401
from .checked_coco import CheckedBoxesMixin, CheckedCocoDataset  # noqa: F401
