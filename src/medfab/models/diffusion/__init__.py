"""Class-conditional diffusion models with EDM preconditioning: network, noise process, samplers, model."""

from medfab.models.diffusion.model import Diffusion, DiffusionConfig

__all__ = ["Diffusion", "DiffusionConfig"]
