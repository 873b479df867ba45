"""The expert-review part of ``medfab report --review REVIEW_DIR``: verdicts and tables from results.json.

Reads the review database when there is one (fresh figures, results.json rewritten), else results.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from medfab.errors import MedfabError
from medfab.report.tables import Cell, Table
from medfab.report.verdicts import Verdict
from medfab.review.db import db_path
from medfab.review.results import RESULTS_NAME, write_results

INTRO = ("Experts were shown a shuffled mix of real and synthetic images, half of each, one at a time, and asked: "
         "real or synthetic, which class, and quality 1–5. Accuracy near 50 % means they could not tell them apart.")


def load_review(review_dir: str | Path) -> dict:
    review_dir = Path(review_dir)
    if db_path(review_dir).is_file():
        return write_results(review_dir)[0].to_json()
    path = review_dir / RESULTS_NAME
    if not path.is_file():
        raise MedfabError(f"{review_dir} holds no review (no {db_path(review_dir).name} or {RESULTS_NAME})",
                          "give the --out folder of `medfab review serve`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MedfabError(f"{path} is not valid JSON: {e}", "run `medfab review results REVIEW_DIR` again") from None


def _pct(v) -> Cell:
    return Cell("—", cls="num skipped") if v is None else Cell(f"{100 * v:.0f}%", cls="num")


def _ci(d: dict) -> Cell:
    if d.get("ci_low") is None:
        return Cell("—", cls="num skipped")
    return Cell(f"{100 * d['ci_low']:.0f}–{100 * d['ci_high']:.0f}%", cls="num")


def _p(v) -> Cell:
    return Cell("—", cls="num skipped") if v is None else Cell(f"{v:.3g}", cls="num")


def _ms(mean, sd, n) -> Cell:
    if mean is None:
        return Cell("—", cls="num skipped")
    return Cell(f"{mean:.2f}" + ("" if sd is None else f" ± {sd:.2f}") + f" (n={n})", cls="num")


def tables(res: dict) -> list[Table]:
    raters = [*res["reviewers"], res["pooled"]]
    detect = [
        [Cell(r["name"], cls="label"), Cell(str(r["answered"]), cls="num"), _pct(r["detection"]["accuracy"]),
         _ci(r["detection"]), _p(r["detection"]["p_vs_chance"]), _pct(r["detection"]["sensitivity"]),
         _pct(r["detection"]["specificity"]), _pct(r["class_accuracy_real"]), _pct(r["class_accuracy_synthetic"])]
        for r in raters
    ]
    by_class = [
        [Cell(c, cls="label"), Cell(str(d["n"]), cls="num"), _pct(d["accuracy"]), _ci(d), _pct(d["sensitivity"]),
         _pct(d["specificity"])]
        for c, d in res["pooled"]["per_class"].items()
    ]
    quality = [
        [Cell(r["name"], cls="label"), _ms(q["real_mean"], q["real_sd"], q["real_n"]),
         _ms(q["synthetic_mean"], q["synthetic_sd"], q["synthetic_n"]), _p(q["mann_whitney_p"])]
        for r in raters if (q := r["quality"])
    ]
    kappa = "—" if res["fleiss_kappa"] is None else f"{res['fleiss_kappa']:.3f}"
    return [
        Table("Real or synthetic? (chance = 50 %)",
              ["reviewer", "answers", "accuracy", "95% CI", "p vs chance", "sensitivity", "specificity",
               "class acc. real", "class acc. synthetic"], detect,
              note=f"Sensitivity: synthetic images called synthetic; specificity: real called real. Exact "
                   f"(Clopper–Pearson) intervals, two-sided binomial test against 50 %. Fleiss' kappa between "
                   f"reviewers: {kappa} over {res['kappa_images']} images answered by all {res['kappa_raters']}."),
        Table("By class of the image (pooled)",
              ["class", "answers", "accuracy", "95% CI", "sensitivity", "specificity"], by_class),
        Table("Quality 1–5", ["reviewer", "real mean ± sd", "synthetic mean ± sd", "Mann–Whitney U p"], quality),
    ]


def verdicts(res: dict) -> list[Verdict]:
    d = res["pooled"]["detection"]
    if not d["n"]:
        return [Verdict("info", "No answers yet: share the reviewers' links (`medfab review add-reviewer`).")]
    acc = f"{100 * d['accuracy']:.0f}% (95% CI {100 * d['ci_low']:.0f}–{100 * d['ci_high']:.0f}%, {d['n']} answers)"
    if d["ci_low"] > 0.5:
        out = [Verdict("warn", f"Reviewers told synthetic from real better than chance: pooled accuracy {acc}.")]
    elif d["ci_high"] < 0.5:
        out = [Verdict("info", f"Pooled accuracy {acc} is below chance: reviewers took synthetic images for real "
                               "more often than real ones.")]
    else:
        out = [Verdict("good", f"Reviewers could not tell synthetic from real: pooled accuracy {acc}, chance is 50%.")]
    q = res["pooled"]["quality"]
    p = q["mann_whitney_p"]
    if p is not None and q["synthetic_mean"] is not None and q["real_mean"] is not None:
        if p < 0.05 and q["synthetic_mean"] < q["real_mean"]:
            out.append(Verdict("warn", f"Synthetic images were rated lower in quality ({q['synthetic_mean']:.2f} vs "
                                       f"{q['real_mean']:.2f}, Mann–Whitney p = {p:.3g})."))
        else:
            out.append(Verdict("good", f"Quality ratings: synthetic {q['synthetic_mean']:.2f}, real "
                                       f"{q['real_mean']:.2f} (Mann–Whitney p = {p:.3g})."))
    return out
