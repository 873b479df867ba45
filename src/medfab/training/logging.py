"""Run logs: ``metrics.jsonl`` (one JSON row per log interval), TensorBoard events, per-class sample grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


class RunLogger:
    """Rank-0 writer of scalars to ``metrics.jsonl`` and ``logs/`` (TensorBoard). Appends on resume.

    ``resume_step``: rows after this step (written by a session that died before its next checkpoint) are
    dropped, so the resumed run's rows are exactly those of an uninterrupted run.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        path = self.run_dir / "metrics.jsonl"
        if resume_step is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and _row_step(line) <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self.jsonl = open(path, "a")  # noqa: SIM115 -- closed in close()
        self.tb = SummaryWriter(str(self.run_dir / "logs"), purge_step=resume_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()
        for k, v in values.items():
            self.tb.add_scalar(k, v, step)

    def image(self, tag: str, step: int, grid: np.ndarray) -> None:
        self.tb.add_image(tag, grid, step, dataformats="HW")

    def close(self) -> None:
        self.jsonl.close()
        self.tb.close()


def _row_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62                                  # a row cut short by a kill mid-write is dropped


def middle_slice(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) stays; a volume (B, C, D, H, W) is shown by its middle slice along D."""
    return x[:, :, x.shape[2] // 2] if x.ndim == 5 else x


@torch.no_grad()
def class_grid(model, num_classes: int, per_class: int, seed: int, device: torch.device) -> np.ndarray:
    """One row per class, ``per_class`` images each, uint8 (K*H, n*W); fixed seed so grids compare."""
    g = torch.Generator(device=device).manual_seed(seed)
    y = torch.arange(num_classes, device=device).repeat_interleave(per_class)   # (K*n,)
    was_training = model.training
    model.eval()
    try:
        x = middle_slice(model.generate(y, generator=g)).float().cpu()          # (K*n, C, H, W)
    finally:
        model.train(was_training)
    x = x[:, 0].clamp(-1, 1)                                                   # first channel: grey
    K, n, (H, W) = num_classes, per_class, x.shape[-2:]
    tiles = x.view(K, n, H, W).permute(0, 2, 1, 3).reshape(K * H, n * W)
    return ((tiles + 1) * 127.5).round().to(torch.uint8).numpy()


def save_grid(path: Path, grid: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)
