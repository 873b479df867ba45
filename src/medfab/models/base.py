"""The contract between a generative model and medfab's single training loop.

A model is an ``nn.Module`` that owns its networks (e.g. ``G``, ``D``, ``G_ema``), its loss and its own
optimisation step. The loop (``medfab.training.loop``) only feeds batches, calls :meth:`train_step`,
logs the returned numbers, checkpoints and resumes. Sampling goes through :meth:`generate`.

Distributed training: the loop wraps every sub-network named in :attr:`GenerativeModel.ddp_modules` in
``DistributedDataParallel`` (``setattr(model, name, DDP(getattr(model, name)))``) and unwraps it for
saving, so a model must always reach its networks through those attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn


class ModelConfig(BaseModel):
    """Settings shared by every model; each model subclasses it with its own fields."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""                         # registry name, filled by the registry
    image_size: int = Field(64, ge=8)      # H = W (= D for 3D)
    channels: int = Field(1, ge=1)
    num_classes: int = Field(2, ge=1)
    spatial_dims: int = Field(2, ge=2, le=3)
    lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(32, ge=1)


class SmallDataConfig(ModelConfig):
    """The small-data tools every adversarial model shares: DiffAugment on D's input and an EMA of G."""

    diffaug: str = "translation,cutout,color"    # DiffAugment policy on D's input; "none" turns it off
    ema: bool = True                             # sample from an EMA of G's weights
    ema_decay: float = Field(0.999, ge=0, lt=1)

    @field_validator("diffaug")
    @classmethod
    def _policy(cls, v: str) -> str:
        from medfab.models.diffaug import parse_policy

        parse_policy(v)
        return v


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a model (stylegan2-ada's phases): the loop runs the declared phases in order.

    ``name`` is what :meth:`GenerativeModel.phase_loss` receives; ``optimizer`` is a key of
    ``configure_optimizers()``; the phase runs on loop steps with ``step % interval == interval - 1`` (WGAN-GP's
    generator: ``interval = n_critic``). EMA copies (:attr:`GenerativeModel.ema_pairs`) whose source network is
    trained by this phase's optimiser are updated by the loop right after the phase's optimiser step.
    """

    name: str
    optimizer: str
    interval: int = 1


@dataclass
class StepContext:
    """What the loop tells a model about the current (micro-)step."""

    step: int                      # optimisation steps done before this one
    nimg: int                      # training images seen before this step (global, all ranks)
    batch_size: int                # global batch of the step
    micro: int = 0                 # index of the micro-batch within the step (gradient accumulation)
    n_micro: int = 1               # number of micro-batches in the step
    cache: dict[str, Any] = field(default_factory=dict)   # shared by the phases of one step and micro-batch


class GenerativeModel(nn.Module):
    """Base class of every registered generator. Subclasses set ``Config`` and implement the methods."""

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    ddp_modules: ClassVar[tuple[str, ...]] = ()   # sub-networks trained with gradients (e.g. ("G", "D"))

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name; the loop saves and restores their state with the checkpoint."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int,
                   optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One optimisation step on a batch ``x`` (B, C, H, W) in [-1, 1] with labels ``y`` (B,).

        Returns scalar losses/diagnostics for logging (python floats). Must be deterministic given the
        global torch RNG state, which the loop seeds and checkpoints.
        """
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] of classes ``y``; all randomness drawn from ``generator``."""
        raise NotImplementedError
