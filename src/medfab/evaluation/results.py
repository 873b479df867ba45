"""The results of ``medfab evaluate``: a versioned schema written to ``EVAL/results.json``.

Shape (``SCHEMA_VERSION`` 2)::

    {
      "schema": "medfab.evaluation", "schema_version": 2, "medfab_version": "0.1.0",
      "created": "2026-01-01T00:00:00Z",
      "config": {...EvalConfig...},
      "classes": ["A", "B"],
      "counts": {"real_train": {"A": 24, ...}, "real_test": {...}, "synthetic": {...},
                 "real_half_a": {...}, "real_half_b": {...}},
      "samples": [{"file": "figures/samples_A.png", "caption": "..."}],      # synthetic beside real
      "families": {
        "fidelity": {"status": "ok" | "skipped" | "error", "seconds": 1.5, "reason": null | "why",
                     "data": {"family": "fidelity", ...}, "figures": [{"file": ..., "caption": ...}]},
        "diversity": ..., "class": ..., "utility": ..., "privacy": ..., "volumes": ...
      }
    }

``data`` is the family's typed result (``FidelityResult``, ... ``VolumesResult`` in
:mod:`medfab.evaluation.families`), written with ``model_dump`` and read back with ``model_validate``, chosen
by its ``family`` tag. Version 2 (typed results, the 3D ``volumes`` family) replaced version 1 (untyped dicts):
a version-1 file is refused with a message to re-run ``medfab evaluate``.

Every number in the file is finite: a value that could not be computed is replaced by
``{"skipped": "<reason>"}`` (see :func:`clean`), and the file is written with ``allow_nan=False`` so a NaN
that slipped through fails loudly instead of producing invalid JSON.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from medfab.errors import MedfabError
from medfab.evaluation.families import FamilyData
from medfab.evaluation.families.base import clean

__all__ = [
    "FAMILIES",
    "FAMILIES_3D",
    "SCHEMA_VERSION",
    "FamilyResult",
    "Figure",
    "Results",
    "clean",
    "read_results",
    "write_results",
]

SCHEMA = "medfab.evaluation"
SCHEMA_VERSION = 2
FAMILIES = ("fidelity", "diversity", "class", "utility", "privacy")  # 2D images
FAMILIES_3D = ("volumes",)  # 3D volumes (NIfTI)


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
    data: FamilyData | dict[str, Any] = Field(default_factory=dict)  # typed; a dict for an unknown family
    figures: list[Figure] = Field(default_factory=list)

    @field_validator("data", mode="before")
    @classmethod
    def _typed(cls, v: Any) -> Any:
        """A dict tagged with a known family must be that family's result (an error, not a silent dict)."""
        if isinstance(v, dict) and "family" in v:
            return _FAMILY_DATA.validate_python(v)
        return v


_FAMILY_DATA = TypeAdapter(FamilyData)


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
    if version < SCHEMA_VERSION:
        raise MedfabError(
            f"{path} was written by an older medfab (results schema version {version}; this medfab reads "
            f"version {SCHEMA_VERSION}, typed per-family results)",
            f"re-run `medfab evaluate ... --out {path.parent}` to rewrite it",
        )
    try:
        return Results.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise MedfabError(
            f"{path} does not match results schema version {SCHEMA_VERSION}: {where}: {first['msg']}",
            "re-run `medfab evaluate` to rewrite it (was it edited by hand?)",
        ) from None
