"""One picture per distillation method (and two shared ones), on one image.

Each function takes a :class:`~mmkd.visualization.distill_scene.DistillScene` and an output
folder and returns a :class:`~mmkd.visualization.picture.Picture`; the values it draws come
from the method's own code (its loss module, mask builders, connector), so that a picture shows
what the loss sees. :func:`make_pictures` runs them in order.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

from ..distill_scene import DistillScene
from ..picture import Picture
from .cwd import cwd_picture
from .defeat import defeat_picture
from .dkd import dkd_picture
from .feature_energy import feature_energy_picture
from .fgd import fgd_picture
from .image_gt import image_gt_picture
from .ld import ld_picture
from .mgd import mgd_picture
from .pkd import pkd_picture
from .reviewkd import reviewkd_picture

PICTURES = OrderedDict(
    image_gt=image_gt_picture,
    feature_energy=feature_energy_picture,
    fgd=fgd_picture,
    defeat=defeat_picture,
    ld=ld_picture,
    cwd=cwd_picture,
    pkd=pkd_picture,
    mgd=mgd_picture,
    reviewkd=reviewkd_picture,
    dkd=dkd_picture)


def make_pictures(scene: DistillScene, out_dir: str, names: Optional[Sequence[str]] = None,
                  cwd_top: int = 4, seed: int = 0) -> Dict[str, Picture]:
    """Make the pictures ``names`` (default: all, in :data:`PICTURES` order) in ``out_dir``,
    printing what was written, left out or skipped."""
    names = list(PICTURES) if names is None else list(names)
    unknown = [n for n in names if n not in PICTURES]
    if unknown:
        raise ValueError(f'unknown pictures {unknown}; choose from {list(PICTURES)}')
    options = dict(cwd=dict(top=cwd_top), mgd=dict(seed=seed))
    made = OrderedDict()
    for name in names:
        pic = PICTURES[name](scene, out_dir, **options.get(name, {}))
        for note in pic.notes:
            print(f'  {name}: {note}')
        if pic.skipped is not None:
            print(f'  skipped {name}: {pic.skipped}')
        for path in pic.files:
            print(f'  wrote {path}')
        made[name] = pic
    return made
