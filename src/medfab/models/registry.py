"""The explicit registry of generative models: a name -> class table, no dotted-string imports."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from medfab.errors import MedfabError

if TYPE_CHECKING:
    from medfab.models.base import GenerativeModel, ModelConfig


def _table() -> dict[str, type[GenerativeModel]]:
    # Imported here so `medfab --help` does not import torch.
    from medfab.models.dcgan import DCGAN
    from medfab.models.diffusion import Diffusion
    from medfab.models.ldm import LatentDiffusion
    from medfab.models.pix2pix import Pix2Pix
    from medfab.models.progan3d import ProGAN3D
    from medfab.models.vae import ConditionalVAE
    from medfab.models.wgan_gp import WGANGP

    return {"pix2pix": Pix2Pix, "dcgan": DCGAN, "wgan-gp": WGANGP, "vae": ConditionalVAE,
            "progan3d": ProGAN3D, "diffusion": Diffusion, "ldm": LatentDiffusion}


MODEL_NAMES = ("pix2pix", "dcgan", "wgan-gp", "vae", "progan3d", "diffusion", "ldm")
# Models that train on 3D volumes only (`medfab train --dims 3`); the others take 2D images (some also volumes).
VOLUME_ONLY = ("progan3d",)


def get_model_class(name: str) -> type[GenerativeModel]:
    table = _table()
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(table)}"
        raise MedfabError(f"unknown model '{name}'", hint)
    return table[name]


def build_model(name: str, **overrides) -> tuple[GenerativeModel, ModelConfig]:
    """Build a model from its registry name and config fields; unknown fields raise a MedfabError."""
    from medfab.models.size_check import check_model_size

    cls = get_model_class(name)
    config = make_config(cls, name, overrides)
    check_model_size(cls, config, name)  # counted on the meta device: an absurd width never reaches the allocator
    try:
        return cls(config), config
    except (RuntimeError, MemoryError) as e:
        if not isinstance(e, MemoryError) and "alloc" not in str(e).lower() and "memory" not in str(e).lower():
            raise
        raise MedfabError(f"not enough memory to build model '{name}' ({str(e).splitlines()[0]})",
                          "lower the width settings or image_size in the config") from None


def make_config(cls, name: str, fields: dict) -> ModelConfig:
    from pydantic import ValidationError

    fields = cls.Config.upgrade(fields)
    known = set(cls.Config.model_fields)
    unknown = [k for k in fields if k not in known]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, sorted(known), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(sorted(known))}"
        raise MedfabError(f"unknown setting '{k}' for model '{name}'", hint)
    try:
        return cls.Config(**{**fields, "name": name})
    except ValidationError as e:
        err = e.errors()[0]
        raise MedfabError(f"bad value for '{'.'.join(map(str, err['loc']))}' of model '{name}': {err['msg']}",
                          "fix the value in your config file or command line") from None
