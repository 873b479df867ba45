"""The report's table cells and the tables every report has (image counts, anomaly detection).

Each family's own tables live in its section module (:mod:`medfab.report.sections`), built from its typed
result. A skipped value (``Skipped`` or ``{"skipped": reason}``) prints as "—" with the reason as a hover
title, never "nan".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medfab.evaluation.families.base import Skipped
from medfab.report.verdicts import first, num


@dataclass
class Cell:
    text: str
    title: str = ""  # hover text (e.g. why a value was skipped)
    cls: str = ""  # css class: "num", "good", "bad", ...


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    note: str = ""
    first_col_label: bool = True
    extra: dict = field(default_factory=dict)


def _skip_reason(v: Any) -> str | None:
    if isinstance(v, Skipped):
        return v.skipped
    if isinstance(v, dict) and "skipped" in v:
        return str(v["skipped"])
    return None


def at(obj: Any, name: str) -> Any:
    """``obj.name``; a skipped ``obj`` itself (a cell shows its reason, ``num`` reads None); None if missing."""
    return obj if obj is None or isinstance(obj, Skipped) else getattr(obj, name, None)


def f(v: Any, fmt: str = ".3g") -> Cell:
    """A number as a cell; a skipped or missing value as an em dash with the reason on hover."""
    why = _skip_reason(v)
    if why is not None:
        return Cell("—", title=why, cls="num skipped")
    x = num(v)
    if x is None:
        return Cell("—" if v is None else str(v), cls="")
    return Cell(format(round(x) if fmt.endswith("d") else x, fmt), cls="num")


def ci(d: Any) -> Cell:
    """``value [lo, hi]`` from a bootstrap interval (``value``, ``lo``, ``hi``, ``n`` attributes)."""
    v = num(getattr(d, "value", None))
    if v is None:
        return f(d)
    lo, hi = num(getattr(d, "lo", None)), num(getattr(d, "hi", None))
    txt = f"{v:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else "")
    return Cell(txt, title=f"95 % bootstrap interval, n = {getattr(d, 'n', None) or '?'}", cls="num")


def pm(mean: Any, std: Any, fmt: str = ".3f") -> Cell:
    m, s = num(mean), num(std)
    if m is None:
        return f(mean)
    if s is not None and abs(s) < 1e-12:  # a spread that is really 0 (one seed, one subset): nothing was
        s = None                          # measured about the spread, so "± 0" would claim false certainty
    return Cell(f"{m:{fmt}} ± {s:{fmt}}" if s is not None else format(m, fmt), cls="num")


def label(g: str) -> Cell:
    return Cell("all classes" if g == "overall" else g, cls="label strong" if g == "overall" else "label")


def signed(v: Any) -> Cell:
    x = num(v)
    if x is None:
        return f(v)
    return Cell(f"{x:+.2f}", cls="num " + ("good" if x > 0.02 else "bad" if x < -0.02 else ""))


def counts(res) -> Table:
    """Images (or volumes) per class and set, from :class:`~medfab.evaluation.results.Results`."""
    c = res.counts
    sets = [
        k
        for k in ("real_train", "real_test", "synthetic", "real_half_a", "real_half_b", "synthetic_matched")
        if k in c
    ]
    classes = res.classes or sorted({k for s in sets for k in c[s]})
    rows = [[Cell(cls_, cls="label")] + [f(c[s].get(cls_, 0), "d") for s in sets] for cls_ in classes]
    if len(classes) > 1:
        rows.append([Cell("total", cls="label strong")] + [f(sum(c[s].values()), "d") for s in sets])
    return Table(
        "Images per class" if res.classes else "Volumes per set",
        ["class" if res.classes else ""] + [s.replace("_", " ") for s in sets],
        rows,
        note="Fidelity and diversity compare real half A with real half B and with a synthetic subset of "
        'half B\'s size per class ("synthetic matched"; half B is cut where the synthetic class is smaller), '
        "so both comparisons use the same sample sizes.",
    )


def anomaly(d: dict) -> list[Table]:
    rows = [
        [Cell(str(r.get("method", "")), cls="label"), Cell(str(r.get("training", "")), cls="label")]
        + [f(r.get(k), ".3f") for k in ("accuracy", "precision", "recall", "f1", "auc")]
        for r in d.get("rows") or []
    ]
    return [
        Table(
            "Anomaly detection",
            ["method", "training", "accuracy", "precision", "recall", "F1", "AUC"],
            rows,
            note=str(first(d, "note", default="")),
        )
    ]
