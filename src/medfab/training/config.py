"""Typed training settings and the config resolution: model defaults < YAML file < command-line flags.

A config file is one flat YAML mapping: model fields (``lr``, ``batch_size``, ``image_size``, the model's
own switches) and training fields (:class:`TrainConfig`) side by side, plus an optional ``model: NAME``.
Every key is checked; a typo gets a "did you mean ...?" hint instead of being silently ignored.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medfab.errors import MedfabError

# Fields the data decides; a user setting them would contradict the images actually loaded.
DATA_FIELDS = ("name", "num_classes", "channels", "spatial_dims")


class TrainConfig(BaseModel):
    """Settings of the training loop itself (not of a model)."""

    model_config = ConfigDict(extra="forbid")

    kimg: float | None = Field(None, gt=0)          # stop after this many thousand images (all processes)
    minutes: float | None = Field(None, gt=0)       # ... or after this much training time (first reached)
    cpu_minutes: float | None = Field(None, gt=0)   # ... or after this much CPU time of the process (shared machines)
    seed: int = 0                                   # seeds weights, batches and every random draw in a step
    grid_every: float = Field(5.0, gt=0)            # kimg between per-class sample grids
    grid_per_class: int = Field(8, ge=1, le=64)     # images per class row in a grid
    ckpt_every_minutes: float = Field(2.0, gt=0)    # a killed run loses at most this much work
    keep_checkpoints: int = Field(2, ge=1)          # older checkpoints are deleted
    log_every: int = Field(50, ge=1)                # steps between metrics.jsonl / TensorBoard rows
    per_class_balanced_sampling: bool = True        # draw classes uniformly so a 52-image class is seen
    device: str = "auto"                            # auto|cpu|cuda|cuda:K (torchrun: each rank's own GPU)
    batch_gpu: int | None = Field(None, ge=1)       # micro-batch per process; None = no gradient accumulation
    grad_clip: float | None = Field(None, gt=0)     # max gradient norm per optimiser step; None = off
    lr_warmup_kimg: float = Field(0.0, ge=0)        # lr ramps up linearly over this many kimg (0 = off)
    compile: bool = False                           # torch.compile the trained networks
    channels_last: bool = False                     # channels-last memory format (2D/3D convolutions)


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else f"known settings: {', '.join(sorted(known))}"


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["lr=1e-4", "ema=false"]`` -> ``{"lr": 0.0001, "ema": False}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise MedfabError(f"--set '{item}' is not of the form key=value", "write e.g. --set lr=1e-4")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if v.strip() else None
    return out


def read_yaml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    p = Path(path)
    if not p.is_file():
        raise MedfabError(f"config file {p} does not exist", "give a YAML file such as configs/dcgan.yaml")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise MedfabError(f"config file {p} is not valid YAML: {e}", "fix the syntax (one 'key: value' a line)")
    if not isinstance(data, dict):
        raise MedfabError(f"config file {p} must be a mapping of key: value", "see configs/dcgan.yaml")
    return data


def split_fields(model_name: str, fields: dict[str, Any]) -> tuple[dict[str, Any], TrainConfig]:
    """Split one flat mapping into (model fields, TrainConfig); unknown keys raise with a suggestion."""
    from medfab.models.registry import get_model_class

    cls = get_model_class(model_name)
    fields = cls.Config.upgrade(fields)
    model_keys = set(cls.Config.model_fields) - set(DATA_FIELDS)
    train_keys = set(TrainConfig.model_fields)
    model_fields: dict[str, Any] = {}
    train_fields: dict[str, Any] = {}
    for k, v in fields.items():
        if k in DATA_FIELDS:
            raise MedfabError(f"'{k}' is set from the data and cannot be configured",
                              f"remove '{k}' from your config or --set flags")
        if k in model_keys:
            model_fields[k] = v
        elif k in train_keys:
            train_fields[k] = v
        else:
            raise MedfabError(f"unknown setting '{k}' for model '{model_name}'",
                              _suggest(k, model_keys | train_keys))
    try:
        train = TrainConfig(**train_fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise MedfabError(f"bad value for training setting '{'.'.join(map(str, err['loc']))}': {err['msg']}",
                          "fix the value in your config file or command line") from None
    return model_fields, train


def resolve_config(model: str | None, *, config_file: str | Path | None = None,
                   flags: dict[str, Any] | None = None, sets: list[str] | None = None
                   ) -> tuple[str, dict[str, Any], TrainConfig]:
    """Resolve (model name, model fields, TrainConfig) from a YAML file, CLI flags and ``--set`` items.

    Precedence: the model's own defaults < ``config_file`` < ``sets`` < explicit ``flags`` (None = not given).
    """
    merged = read_yaml(config_file)
    file_model = merged.pop("model", None)
    merged.update(parse_sets(sets))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    name = model or file_model
    if not name:
        raise MedfabError("no model chosen", "pass --model NAME (e.g. dcgan) or put 'model: NAME' in --config")
    model_fields, train = split_fields(name, merged)
    return name, model_fields, train
