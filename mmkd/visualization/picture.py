"""What one method picture made: its files, the numbers and values it shows, its banners."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .figures import PANEL_IN, panel_figure, save_figure

Banner = Tuple[str, str]  # (kind, text), see figures.BANNER_COLORS


@dataclass
class Picture:
    """The record of one picture (one or several PNG files).

    ``numbers`` go into ``summary.json``; ``values`` are the tensors the picture shows (for
    callers and tests, not written); ``banners`` are drawn on every file of the picture;
    ``notes`` say what was left out and why (printed); ``skipped`` says why there is no file.
    """
    key: str
    banners: List[Banner] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    numbers: Dict = field(default_factory=dict)
    values: Dict = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    skipped: Optional[str] = None

    def figure(self, nrows: int, ncols: int, title: str, panel_in: float = PANEL_IN):
        """:func:`panel_figure` with this picture's banners."""
        return panel_figure(nrows, ncols, title, panel_in, banners=self.banners)

    def save(self, fig, out_dir: str, name: str) -> str:
        path = save_figure(fig, osp.join(out_dir, name))
        self.files.append(path)
        return path

    def skip(self, why: str) -> 'Picture':
        self.skipped = why
        return self

    def note(self, text: str) -> None:
        self.notes.append(text)

    def summary(self) -> Dict:
        """The JSON-able part: files (names), banners, notes, numbers or the reason skipped."""
        if self.skipped is not None:
            return dict(skipped=self.skipped)
        return dict(files=[osp.basename(f) for f in self.files],
                    banners=[text for _, text in self.banners], notes=self.notes,
                    **self.numbers)
