"""The results of ``medfab evaluate``: a versioned schema written to ``EVAL/results.json``.

Shape (``SCHEMA_VERSION`` 1)::

    {
      "schema": "medfab.evaluation", "schema_version": 1, "medfab_version": "0.1.0",
      "created": "2026-01-01T00:00:00Z",
      "config": {...EvalConfig...},
      "classes": ["A", "B"],
      "counts": {"real_train": {"A": 24, ...}, "real_test": {...}, "synthetic": {...},
                 "real_half_a": {...}, "real_half_b": {...}},
      "samples": [{"file": "figures/samples_A.png", "caption": "..."}],      # synthetic beside real
      "families": {
        "fidelity": {"status": "ok" | "skipped" | "error", "seconds": 1.5, "reason": null | "why",
                     "data": {...family-specific...}, "figures": [{"file": ..., "caption": ...}]},
        "diversity": ..., "class": ..., "utility": ..., "privacy": ...
      }
    }

Every number in the file is finite: a value that could not be computed is replaced by
``{"skipped": "<reason>"}`` (see :func:`clean`), and the file is written with ``allow_nan=False`` so a NaN
that slipped through fails loudly instead of producing invalid JSON. The family-specific ``data`` shapes
are documented in :mod:`medfab.evaluation.families`.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medfab.errors import MedfabError

SCHEMA = "medfab.evaluation"
SCHEMA_VERSION = 1
FAMILIES = ("fidelity", "diversity", "class", "utility", "privacy")


class Figure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the evaluation folder, e.g. "figures/hist_A.png"
    caption: str = ""


class FamilyResult(BaseModel):
    """One metric family: its numbers, figures, and whether it ran."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "skipped", "error"] = "ok"
    seconds: float = 0.0
    reason: str | None = None  # why skipped, or the error message
    data: dict[str, Any] = Field(default_factory=dict)
    figures: list[Figure] = Field(default_factory=list)


class Results(BaseModel):
    schema_: str = Field(SCHEMA, alias="schema")
    schema_version: int = SCHEMA_VERSION
    medfab_version: str = ""
    created: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    config: dict[str, Any] = Field(default_factory=dict)
    classes: list[str] = Field(default_factory=list)
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    samples: list[Figure] = Field(default_factory=list)
    families: dict[str, FamilyResult] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return clean(self.model_dump(by_alias=True, mode="python"))


def clean(obj: Any, *, _key: str = "") -> Any:
    """Return ``obj`` as plain JSON types with every non-finite number replaced by a ``skipped`` reason.

    numpy scalars and arrays become Python numbers and lists; tuples become lists; NaN/inf become
    ``{"skipped": "<key> is not finite (nan)"}`` so a reader sees why a figure is missing.
    """
    if isinstance(obj, dict):
        return {str(k): clean(v, _key=str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v, _key=_key) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist(), _key=_key)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if not math.isfinite(v):
            return {"skipped": f"{_key or 'value'} is not finite ({v})"}
        return v
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, BaseModel):
        return clean(obj.model_dump(mode="python"), _key=_key)
    return str(obj)


def write_results(results: Results, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=1, allow_nan=False)
    path.write_text(text)
    return path


def read_results(path: str | Path) -> Results:
    """Read ``results.json`` (a file or the evaluation folder holding it) and check its schema version."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise MedfabError(
            f"no results.json at {path}", "give the folder written by `medfab evaluate ... --out EVAL`"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MedfabError(f"{path} is not valid JSON ({e})", "re-run `medfab evaluate`") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if raw.get("schema") != SCHEMA or version is None:
        raise MedfabError(
            f"{path} is not a medfab evaluation results file", "give the folder written by `medfab evaluate`"
        )
    if version > SCHEMA_VERSION:
        raise MedfabError(
            f"{path} has schema version {version}; this medfab reads up to {SCHEMA_VERSION}",
            "upgrade medfab to read it",
        )
    return Results.model_validate(raw)
