"""Per-image random streams inside one batch, so a sampled image depends on its own seed alone.

As edm2's ``generate_images.StackedRandomGenerator``: row ``i`` of every draw comes from generator ``i``, so
image ``i`` is the same whether it is made alone, in a batch of 7 or of 64, on any device. Every random draw a
model makes while *sampling* goes through :func:`randn` / :func:`rand` of ``medfab.models.blocks`` (which accept
either a plain ``torch.Generator`` or this stack), never through ``torch.randn`` without a generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StackedRandomGenerator:
    """One CPU ``torch.Generator`` per batch row; draws are made on the CPU per row, then moved to ``device``."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.generators)

    def _check(self, shape: tuple[int, ...]) -> None:
        if shape[0] != len(self.generators):
            raise ValueError(f"batch dimension {shape[0]} != number of per-image seeds {len(self.generators)}")

    def randn(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, *rest) standard normal; row i from generator i."""
        self._check(shape)
        return torch.stack([torch.randn(shape[1:], generator=g) for g in self.generators]).to(device)

    def rand(self, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, *rest) uniform [0, 1); row i from generator i."""
        self._check(shape)
        return torch.stack([torch.rand(shape[1:], generator=g) for g in self.generators]).to(device)
