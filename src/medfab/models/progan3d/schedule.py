"""The growth schedule of Progressive GAN as a pure function of training images seen (``nimg``).

Karras et al. 2018 (§3, Fig. 2; appendix A.1) train the first resolution for a while, then for every new
resolution *fade* it in -- the new block's output is blended with the upsampled output of the previous one,
with a weight ``alpha`` rising linearly from 0 to 1 -- and then *stabilise* it (alpha = 1). They count both
periods in images shown (600k each). Keying everything on ``nimg`` rather than on steps or on state kept in
the model means a resumed run, a run with another batch size and a checkpoint all agree on the stage.

Timeline (level 0 = ``start_size``, level L = ``start_size * 2**L``):

    [level 0 stable: stable_kimg] [level 1 fade: fade_kimg] [level 1 stable: stable_kimg] ... [final level: forever]
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    level: int          # index of the finest active block
    alpha: float        # fade-in weight of that block: 0 -> 1 while fading, then 1
    resolution: int     # side of the images at this level

    @property
    def fading(self) -> bool:
        return self.alpha < 1.0


@dataclass(frozen=True)
class GrowthSchedule:
    start_size: int     # side at level 0 (4 or 8)
    final_size: int     # side at the last level (the model's image_size)
    fade_kimg: float    # thousand images over which a new level fades in
    stable_kimg: float  # thousand images each level trains at alpha = 1 before the next one starts

    def __post_init__(self):
        if self.start_size < 2 or self.final_size < self.start_size:
            raise ValueError(f"need 2 <= start_size <= final_size, got {self.start_size}, {self.final_size}")
        n = math.log2(self.final_size / self.start_size)
        if n != int(n):
            raise ValueError(f"final_size / start_size must be a power of two, got {self.final_size}/{self.start_size}")
        if self.fade_kimg < 0 or self.stable_kimg < 0:
            raise ValueError("fade_kimg and stable_kimg must be >= 0")

    @property
    def max_level(self) -> int:
        return round(math.log2(self.final_size / self.start_size))

    def level_start(self, level: int) -> float:
        """Images seen when ``level`` starts to fade in (level 0: 0)."""
        if level <= 0:
            return 0.0
        return 1000.0 * (self.stable_kimg + (level - 1) * (self.fade_kimg + self.stable_kimg))

    def __call__(self, nimg: float) -> Stage:
        """The stage in force once ``nimg`` training images have been seen."""
        period = 1000.0 * (self.fade_kimg + self.stable_kimg)
        t = float(nimg) - 1000.0 * self.stable_kimg                 # images since level 1 started fading
        if t < 0 or self.max_level == 0:
            return Stage(0, 1.0, self.start_size)
        level = min(self.max_level, 1 + int(t // period)) if period > 0 else self.max_level
        into = t - (level - 1) * period                             # images since this level started
        alpha = 1.0 if self.fade_kimg == 0 else min(1.0, into / (1000.0 * self.fade_kimg))
        return Stage(level, alpha, self.start_size * 2**level)

    def boundaries(self) -> list[tuple[float, str]]:
        """(nimg, description) of every change of phase, for logs and docs."""
        out = [(0.0, f"{self.start_size}^d stable")]
        for level in range(1, self.max_level + 1):
            s = self.level_start(level)
            res = self.start_size * 2**level
            out += [(s, f"{res}^d fade-in"), (s + 1000.0 * self.fade_kimg, f"{res}^d stable")]
        return out
