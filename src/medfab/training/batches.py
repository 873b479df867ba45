"""Which images form the batch of step ``t``: a pure function of (seed, t).

Drawing each step's indices from a generator seeded by ``(seed, t)`` (with replacement) means a resumed
run sees exactly the batches an uninterrupted run would, with no sampler state to checkpoint, and every
DDP process agrees on the global batch and takes its own slice of it (DistributedSampler-style sharding).
"""

from __future__ import annotations

import numpy as np


class BatchPlan:
    def __init__(self, y: np.ndarray, num_classes: int, *, seed: int, balanced: bool):
        self.seed = seed
        self.balanced = balanced
        self.n = len(y)
        # Indices of each class that has images; a class without images cannot be drawn.
        self.by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
        self.present = np.array([c for c in range(num_classes) if len(self.by_class[c])], dtype=np.int64)

    def global_batch(self, step: int, batch_size: int) -> np.ndarray:
        """Indices (batch_size,) into the training set for step ``step``, identical on every rank."""
        rng = np.random.default_rng([self.seed, step])
        if not self.balanced:
            return rng.integers(0, self.n, size=batch_size)
        # Class first, uniformly, then an image of that class: each class is seen equally often.
        cls = self.present[rng.integers(0, len(self.present), size=batch_size)]
        pick = rng.random(batch_size)
        return np.array([self.by_class[c][int(p * len(self.by_class[c]))] for c, p in zip(cls, pick)],
                        dtype=np.int64)

    def local_batch(self, step: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
        """This rank's share (batch_size // world_size,) of the global batch."""
        idx = self.global_batch(step, batch_size)
        per = batch_size // world_size
        return idx[rank * per:(rank + 1) * per]
