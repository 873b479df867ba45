"""What every metric family shares: the typed "skipped" value, number fields, JSON cleaning and row groups.

A single metric that refuses its input (a MedfabError, e.g. a class with too few images) becomes
``Skipped(skipped=reason)`` and the rest of its family still runs; a NaN or inf becomes a Skipped too
(:func:`clean`), so every number in results.json is finite and every gap says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medfab.errors import MedfabError

T = TypeVar("T")


class Skipped(BaseModel):
    """A value that could not be computed, and why (printed as "—" with the reason on hover)."""

    model_config = ConfigDict(extra="forbid")

    skipped: str


#: A finite number, a skipped value, or nothing (field absent in the metric's output).
Num = Annotated[float | Skipped | None, Field(union_mode="left_to_right")]


class Loose(BaseModel):
    """A metric's own dict, typed where the report reads it; other keys pass through unchanged.

    The metric modules (distances, privacy, utility...) may add fields without breaking results.json.
    """

    model_config = ConfigDict(extra="allow")


def maybe(tp):
    """``Skipped | tp``, tried in that order (a ``{"skipped": ...}`` dict never fills ``tp``'s defaults)."""
    return Annotated[Skipped | tp, Field(union_mode="left_to_right")]


def value(v: Any) -> float | None:
    """A finite float, or None for a skipped / missing value."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def try_metric(fn: Callable, *args, **kwargs):
    """A metric value, or ``{"skipped": reason}`` when the metric refuses its input (MedfabError)."""
    try:
        return fn(*args, **kwargs)
    except MedfabError as e:
        return {"skipped": e.message}


def scalars(d) -> Any:
    """The summary numbers of a metric dict, without per-image lists (they only feed figures)."""
    if not isinstance(d, dict):
        return d
    return {k: v for k, v in d.items() if not isinstance(v, (list, tuple, np.ndarray))}


def groups(ctx, ts_name: str) -> dict[str, np.ndarray]:
    """Row indices of set ``ts_name`` for "overall" and for each class."""
    y = getattr(ctx, ts_name).y
    out = {"overall": np.arange(len(y))}
    out.update({c: np.flatnonzero(y == k) for k, c in enumerate(ctx.classes)})
    return out


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


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


def typed(model: type[BaseModel], data: dict) -> Any:
    """``model`` validated from a metric dict, after :func:`clean` (numpy -> Python, NaN -> Skipped)."""
    return model.model_validate(clean(data))
