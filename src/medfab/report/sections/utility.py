"""Utility section: a classifier trained on each training set, tested on real images (train synthetic, test real)."""

from __future__ import annotations

from medfab.evaluation.families.utility import UtilityResult
from medfab.report.tables import Cell, Table, f, pm, signed
from medfab.report.verdicts import Verdict, num

RESULT = UtilityResult
TITLE = "Utility: does training on them help a classifier on real data?"
INTRO = (
    "One classifier per training set and seed, always tested on the real test set (train synthetic, test "
    "real): a small CNN trained from scratch (evaluate --classifiers cnn) or, by default, a class-weighted "
    "logistic regression on the features of the FeatureNet trained on real images; the 'model' column says "
    "which. Rows: model x training data; columns: metrics as mean ± std over seeds."
)
_METRICS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc."),
    ("macro_precision", "precision"),
    ("macro_recall", "recall"),
    ("macro_f1", "macro F1"),
)


def tables(r: UtilityResult, res=None) -> list[Table]:
    out = [
        Table(
            "Utility: trained on each set, tested on real (mean ± std over seeds)",
            ["model", "training data", "n train"] + [h for _, h in _METRICS],
            [
                [
                    Cell(row.model, cls="label"),
                    Cell(row.training_data, cls="label strong"),
                    f(row.n_train, "d"),
                ]
                + [pm(getattr(row, m), row.std(m)) for m, _ in _METRICS]
                for row in r.main_rows()
            ],
            note=f"Seeds {r.seeds}; {r.n_test if r.n_test is not None else '?'} real test images; macro averages "
            f"over classes.",
        )
    ]
    if r.share_sweep:
        out.append(
            Table(
                "Share sweep (training-set size fixed)",
                ["synthetic share", "n train"] + [h for _, h in _METRICS],
                [
                    [f(row.share, ".0%"), f(row.n_train, "d")]
                    + [pm(getattr(row, m), row.std(m)) for m, _ in _METRICS]
                    for row in r.share_sweep
                ],
            )
        )
    if r.recall_delta:
        classes = list(next(iter(r.recall_delta.values())).keys())
        out.append(
            Table(
                "Recall change per class vs real only",
                ["training data"] + classes,
                [
                    [Cell(n, cls="label")] + [signed(v.get(c)) for c in classes]
                    for n, v in r.recall_delta.items()
                ],
            )
        )
    return out


def _real_at_chance(r: UtilityResult, res) -> tuple[float | None, float]:
    real = r.regimes.get("real")
    chance = 1 / max(2, len(res.classes) if res is not None else len(r.classes))
    ba = num(real.mean.balanced_accuracy) if real is not None else None
    return ba, chance


def verdicts(r: UtilityResult, res=None) -> list[Verdict]:
    """Synthetic-only at >= the study's goal ratio (0.9) of real is good, >= 0.7 a warning, below bad."""
    real_ba, chance = _real_at_chance(r, res)
    if real_ba is not None and real_ba <= chance + 0.05:
        return [
            Verdict(
                "warn",
                f"Even the classifier trained on real images is at chance level on the real test set (balanced "
                f"accuracy {real_ba:.0%}, chance {chance:.0%}), so the utility ratios say little: use more "
                f"images or more --epochs.",
            )
        ]
    out = []
    ba, goal = num(r.ratio_to_real.balanced_accuracy), num(r.ratio_to_real.goal) or 0.9
    if ba is not None:
        f1 = num(r.ratio_to_real.macro_f1)
        out.append(
            Verdict(
                "good" if ba >= goal else "warn" if ba >= 0.7 else "bad",
                f"A classifier trained on synthetic images only reaches {ba:.0%} of the real-trained one's "
                f"balanced accuracy"
                + (f" ({f1:.0%} of its macro-F1)" if f1 else "")
                + f"; the goal is {goal:.0%}.",
            )
        )
    for name, delta in r.recall_delta.items():
        vals = {c: num(v) for c, v in delta.items() if num(v) is not None}
        if vals:
            best = max(vals, key=vals.get)
            if vals[best] > 0.05:
                out.append(
                    Verdict("good", f"{name}: recall of {best} rises by {vals[best]:+.2f} over real only.")
                )
    out += [Verdict("info", note) for note in r.notes]
    return out


def cards(r: UtilityResult, res=None) -> list:
    ba = num(r.ratio_to_real.balanced_accuracy)
    if ba is None:
        return []
    real_ba, chance = _real_at_chance(r, res)
    if real_ba is not None and real_ba <= chance + 0.05:
        return [("Synthetic-only utility", "n/a (real at chance)", "warn")]
    goal = num(r.ratio_to_real.goal) or 0.9
    return [
        (
            "Synthetic-only utility",
            f"{ba:.0%} of real",
            "good" if ba >= goal else "warn" if ba >= 0.7 else "bad",
        )
    ]
