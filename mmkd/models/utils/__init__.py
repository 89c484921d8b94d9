from .box_mask import boxes_of, concat_gt_boxes, meta_hw, rasterize_boxes_max  # noqa: F401
from .vlr import vlr_region  # noqa: F401
