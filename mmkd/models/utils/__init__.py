from .vlr import vlr_region  # noqa: F401
from .box_mask import defeat_gt_masks, fgd_masks, map_boxes_to_levels, rasterize_boxes_max  # noqa: F401,E501
