"""Training: one loop for every model (`fit`), typed settings, checkpoints, DDP helpers, run logs."""

from medfab.training.checkpoint import load_run
from medfab.training.config import TrainConfig, resolve_config
from medfab.training.loop import fit

__all__ = ["TrainConfig", "fit", "load_run", "resolve_config"]
