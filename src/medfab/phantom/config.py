"""The phantom cohort's typed configuration, its class lists and the class-count arithmetic."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from medfab.errors import MedfabError

Task = Literal["alzheimer", "tumor"]
Contrast = Literal["t1", "t2", "mixed"]

# Folder names exactly as the public data sets spell them, ordered by disease stage (mild -> severe).
CLASSES: dict[str, list[str]] = {
    "alzheimer": ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"],
    "tumor": ["no", "yes"],
}

# "imbalanced" reproduces the public sets' proportions: Kaggle Alzheimer train split; Br35H is 1500:1500.
NATURAL_PROPORTIONS: dict[str, list[float]] = {
    "alzheimer": [2560, 1792, 717, 52],
    "tumor": [1500, 1500],
}

# Default scanner contrast per task: the Kaggle Alzheimer slices are T1; Br35H mixes T1 and T2.
DEFAULT_CONTRAST: dict[str, str] = {"alzheimer": "t1", "tumor": "mixed"}

MIN_PER_CLASS = 2


class PhantomConfig(BaseModel):
    """Everything that decides a phantom cohort; saved as ``phantom.json`` next to the images."""

    model_config = ConfigDict(extra="forbid")

    task: Task = "alzheimer"
    n: int = Field(1000, ge=1, description="number of subjects (images) in the cohort")
    size: int = Field(128, ge=16, le=512, description="output edge length in pixels / voxels")
    dims: Literal[2, 3] = 2
    seed: int = Field(0, ge=0)
    balance: str = Field("imbalanced", description="imbalanced | equal | ratios 'a:b:c:d' in class order")
    contrast: Contrast | None = Field(None, description="None -> task default (alzheimer t1, tumor mixed)")
    workers: int = Field(1, ge=1, le=64, description="processes; output does not depend on it")

    @field_validator("balance")
    @classmethod
    def _check_balance(cls, v: str) -> str:
        if v in ("imbalanced", "equal"):
            return v
        parts = v.split(":")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"balance {v!r} is not 'imbalanced', 'equal' or ratios like '4:3:2:1'") from None
        if any(not np.isfinite(x) or x <= 0 for x in vals):
            raise ValueError(f"balance ratios must be positive numbers, got {v!r}")
        return v

    @property
    def classes(self) -> list[str]:
        return CLASSES[self.task]

    @property
    def resolved_contrast(self) -> str:
        return self.contrast or DEFAULT_CONTRAST[self.task]


def proportions(task: str, balance: str) -> np.ndarray:
    """Class proportions (K,) summing to 1, in the order of ``CLASSES[task]``."""
    k = len(CLASSES[task])
    if balance == "imbalanced":
        p = np.asarray(NATURAL_PROPORTIONS[task], dtype=np.float64)
    elif balance == "equal":
        p = np.ones(k)
    else:
        p = np.asarray([float(x) for x in balance.split(":")], dtype=np.float64)
        if len(p) != k:
            raise MedfabError(
                f"--balance {balance!r} gives {len(p)} ratios but task {task!r} has {k} classes",
                f"give {k} ratios in this order: {':'.join(CLASSES[task])}",
            )
    return p / p.sum()


def class_counts(n: int, task: str, balance: str) -> np.ndarray:
    """Images per class (K,) summing to ``n``: largest-remainder rounding, then at least 2 per class."""
    p = proportions(task, balance)
    k = len(p)
    if n < MIN_PER_CLASS * k:
        raise MedfabError(
            f"n={n} is too small for {k} classes",
            f"ask for at least {MIN_PER_CLASS * k} images (--n) so that every class gets {MIN_PER_CLASS}",
        )
    exact = p * n
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    # Lift rare classes to the minimum, one image at a time, from the class most above its exact share.
    while counts.min() < MIN_PER_CLASS:
        donor = int(np.argmax(np.where(counts > MIN_PER_CLASS, counts - exact, -np.inf)))
        counts[donor] -= 1
        counts[int(np.argmin(counts))] += 1
    return counts
