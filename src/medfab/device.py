"""One device policy for every command: ``--device auto|cpu|cuda|cuda:K`` (auto = CUDA when present)."""

from __future__ import annotations

import re

from medfab.errors import MedfabError

_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def resolve_device(spec: str = "auto"):
    """The ``torch.device`` that ``spec`` names, checked: a CUDA request without CUDA is an error, not a fallback."""
    import torch

    spec = (spec or "auto").strip().lower()
    if not _PATTERN.match(spec):
        raise MedfabError(f"unknown device '{spec}'", "use --device auto, cpu, cuda or cuda:K (e.g. cuda:0)")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MedfabError(f"--device {spec} was asked for, but this PyTorch sees no CUDA device",
                          "use --device cpu (or auto), or install a CUDA build of PyTorch")
    dev = torch.device(spec)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MedfabError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present",
                          f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return dev
