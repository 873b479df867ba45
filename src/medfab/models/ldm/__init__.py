"""Latent diffusion: a KL autoencoder (+ PatchGAN) and EDM diffusion in its latent space."""

from medfab.models.ldm.model import LatentDiffusion, LDMConfig

__all__ = ["LDMConfig", "LatentDiffusion"]
