"""Class-fidelity section: how often a classifier trained on real images recognises the requested class."""

from __future__ import annotations

from medfab.evaluation.families.class_fidelity import ClassFidelityResult
from medfab.report.tables import Cell, Table, at, f, label
from medfab.report.verdicts import Verdict, num

RESULT = ClassFidelityResult
TITLE = "Class fidelity: do they show the requested class?"
INTRO = (
    "A CNN trained on real images classifies each synthetic image; a good generator's images are recognised "
    "about as often as real test images."
)


def _chance(res) -> float:
    return 1 / max(2, len(res.classes) if res is not None else 2)


def tables(r: ClassFidelityResult, res=None) -> list[Table]:
    base = at(r.real_test_baseline, "recognition_rate") or {}
    classes = (res.classes if res is not None else None) or r.classes
    rows = [[label(c), f(r.recognition_rate.get(c), ".0%"), f(base.get(c), ".0%")] for c in classes]
    rows.append(
        [
            Cell("balanced", cls="label strong"),
            f(r.balanced_accuracy, ".0%"),
            f(at(r.real_test_baseline, "balanced_accuracy"), ".0%"),
        ]
    )
    return [Table("Recognition rate of the requested class", ["class", "synthetic", "real test"], rows)]


def verdicts(r: ClassFidelityResult, res=None) -> list[Verdict]:
    """Recognition of synthetic images at >= 90 % of the real test images' rate is good, >= 60 % a warning."""
    s, b = num(r.balanced_accuracy), num(at(r.real_test_baseline, "balanced_accuracy"))
    if s is None:
        return []
    if b is None:
        return [
            Verdict(
                "info",
                f"A classifier trained on real images recognises the requested class of {s:.0%} "
                f"of synthetic images (balanced).",
            )
        ]
    chance = _chance(res)
    if b <= chance + 0.05:
        return [
            Verdict(
                "warn",
                f"The classifier recognises real test images only at chance level ({b:.0%}, chance {chance:.0%}), "
                f"so class fidelity ({s:.0%}) says little: train it longer (--epochs) or on more images.",
            )
        ]
    level = "good" if s >= 0.9 * b else "warn" if s >= 0.6 * b else "bad"
    out = [
        Verdict(
            level,
            f"A classifier trained on real images recognises the requested class of {s:.0%} of "
            f"synthetic images (real test images: {b:.0%}).",
        )
    ]
    low = [
        f"{c} ({num(v):.0%})"
        for c, v in r.recognition_rate.items()
        if num(v) is not None and num(v) < 0.5 * b
    ]
    if low:
        out.append(Verdict("warn", f"Rarely recognised: {', '.join(low)}."))
    return out


def cards(r: ClassFidelityResult, res=None) -> list:
    s = num(r.balanced_accuracy)
    if s is None:
        return []
    b = num(at(r.real_test_baseline, "balanced_accuracy"))
    if b is None:
        level = "info"
    elif b <= _chance(res) + 0.05:  # even real images are not recognised: the figure says little
        level = "warn"
    else:
        level = "good" if s >= 0.9 * b else "warn"
    return [("Class recognised", f"{s:.0%}" + (f" (real {b:.0%})" if b is not None else ""), level)]
