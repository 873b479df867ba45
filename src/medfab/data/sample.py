"""The labelled-sample abstraction that every reader returns.

A :class:`Sample` names one image (a 2D image, one slice of a volume, a whole volume or one row of a
``.npz`` array) and its class; it holds no pixels. :func:`medfab.data.readers.load_array` turns it into
a float32 array. A :class:`Dataset` is a list of samples plus the ordered class names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: Path                 # the file (for a DICOM series: the folder)
    label: str                 # class name
    split: str | None = None   # "train" / "val" / "test" when the layout has split folders
    subject: str | None = None # subject / patient group id, when known (used for group-aware splits)
    index: int | None = None   # slice index (2D from a volume) or row (npz); None for whole files
    axis: int | None = None    # slicing axis for 2D slices of a volume
    reader: str = "image"      # "image" | "nifti" | "dicom" | "npz"

    @property
    def key(self) -> str:
        """A stable, human-readable id, e.g. ``train/NonDemented/a.jpg`` or ``vol.nii.gz#axis2:40``."""
        s = str(self.path)
        if self.index is not None:
            s += f"#{'' if self.axis is None else f'axis{self.axis}:'}{self.index}"
        return s


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    classes: list[str]                       # sorted class names; label index = position here
    problems: list[str] = field(default_factory=list)  # non-fatal findings (e.g. skipped files)

    @property
    def splits(self) -> list[str]:
        return sorted({s.split for s in self.samples if s.split is not None})

    def labels(self) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[s.label] for s in self.samples]

    def counts(self) -> dict[tuple[str | None, str], int]:
        """Number of samples per (split, class)."""
        return dict(Counter((s.split, s.label) for s in self.samples))

    def subset(self, split: str | None) -> Dataset:
        """The samples of one split (``None``: all of them)."""
        if split is None:
            return self
        return Dataset(self.root, [s for s in self.samples if s.split == split], self.classes, self.problems)

    def __len__(self) -> int:
        return len(self.samples)
