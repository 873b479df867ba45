"""The contract between a generative model and medfab's single training loop (the engine contract, issue 8).

A model is an ``nn.Module`` that owns its networks (e.g. ``G``, ``D``, ``G_ema``) and its losses; the loop
(``medfab.training.loop`` with ``medfab.training.step``) owns the optimisation, as in stylegan2-ada's phases
and edm2's ``EDM2Loss`` + ``training_loop``. A model declares:

- :meth:`GenerativeModel.phases`: the optimisation phases of one step, in order (a GAN's D then G, WGAN-GP's
  generator every ``n_critic`` steps, a VAE's ELBO, a diffusion model's denoising loss);
- :meth:`GenerativeModel.configure_optimizers`: the optimisers the phases name;
- :meth:`GenerativeModel.phase_loss`: the loss of one phase on one micro-batch, computed inside autocast,
  as tensors (``"loss"`` to minimise + detached scalars to log; no ``.item()``, no host sync);
- :attr:`GenerativeModel.ema_pairs`: EMA copy -> source network; the loop updates each copy right after the
  optimiser step of the phase that trains its source (decay: ``config.ema_decay`` with warm-up, or the
  model's own ``ema_decay_at(ctx)``).

The loop does zero_grad, backward (outside autocast), gradient accumulation over micro-batches, clipping,
learning-rate warm-up, optimiser steps, EMA updates, logging, checkpoints and exact resume. All training
randomness comes from the global torch RNG, which the loop seeds per step. Sampling goes through
:meth:`generate`, whose random draws all come from ``generator`` (``blocks.randn/rand``).

Distributed training: the loop wraps every sub-network named in :attr:`GenerativeModel.ddp_modules` in
``DistributedDataParallel`` (``setattr(model, name, DDP(getattr(model, name)))``) and unwraps it for
saving, so a model must always reach its networks through those attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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
    # schedules once stored in optimiser steps: old key -> its key in images seen (kimg), per model
    legacy_steps: ClassVar[dict[str, str]] = {}

    @classmethod
    def upgrade(cls, data: Any) -> Any:
        """Config input from before a schedule was keyed on images seen, given in kimg at the run's batch
        size, so old runs and config files load with the same schedule (the registry applies this before it
        checks for unknown keys)."""
        if not isinstance(data, dict):
            return data
        for old, new in cls.legacy_steps.items():
            if old in data:
                data = dict(data)
                data.setdefault(new, data.pop(old) * data.get("batch_size", 32) / 1000)
        return data

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return cls.upgrade(data)


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
    ema_pairs: ClassVar[dict[str, str]] = {}      # EMA copy attribute -> source attribute (e.g. G_ema -> G)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name; the loop saves and restores their state with the checkpoint."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """The optimisation phases of one training step, in the order the loop runs them."""
        raise NotImplementedError

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Loss of ``phase`` on a micro-batch ``x`` (b, C, H, W[, D]) in [-1, 1] with labels ``y`` (b,).

        Returns ``"loss"``, the scalar tensor to minimise (penalties included), plus detached scalar tensors to
        log. Called inside autocast; deterministic given the global torch RNG, which the loop seeds per step.
        """
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator: torch.Generator | None = None, **sampler) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] of classes ``y``; all randomness drawn from ``generator``."""
        raise NotImplementedError

    def sampler_settings(self, **sampler) -> dict[str, Any]:
        """The resolved sampler settings (recorded in the manifest); a model without settings rejects any."""
        if sampler:
            from medfab.errors import MedfabError

            raise MedfabError(f"model '{self.config.name}' takes no sampler settings, got: {', '.join(sampler)}",
                              "drop --sampler/--steps/--guidance/--eta (they are for diffusion models)")
        return {}
