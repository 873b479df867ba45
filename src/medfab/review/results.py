"""Answers -> figures: can reviewers tell real from synthetic, per reviewer and pooled.

"Positive" means synthetic: sensitivity = share of synthetic images called synthetic, specificity = share of
real images called real. Accuracy is compared with chance (0.5: the selection is half real, half synthetic)
by an exact binomial test and a 95 % Clopper-Pearson interval. Pooled figures treat every answer as one
trial (answers of one reviewer are not independent, so read the pooled interval as a lower bound on the
uncertainty). Agreement between reviewers is Fleiss' kappa over the images that every reviewer answered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medfab.review import stats
from medfab.review.db import Answer, Item, ReviewDB
from medfab.review.selection import classes as stored_classes

RESULTS_NAME = "results.json"


@dataclass
class Detection:
    """Telling real from synthetic, over ``n`` answers."""

    n: int
    correct: int
    accuracy: float | None
    ci_low: float | None          # 95 % Clopper-Pearson
    ci_high: float | None
    p_vs_chance: float | None     # two-sided exact binomial test against 0.5
    sensitivity: float | None     # synthetic called synthetic
    specificity: float | None     # real called real

    @property
    def beats_chance(self) -> bool:
        return self.ci_low is not None and self.ci_low > 0.5


@dataclass
class Quality:
    """Quality scores 1-5, real vs synthetic images."""

    real_n: int
    real_mean: float | None
    real_sd: float | None
    synthetic_n: int
    synthetic_mean: float | None
    synthetic_sd: float | None
    mann_whitney_p: float | None


@dataclass
class RaterResults:
    name: str                    # a reviewer's name, or "pooled"
    answered: int
    detection: Detection
    class_accuracy_real: float | None       # chosen class == the image's class, real images
    class_accuracy_synthetic: float | None  # ... synthetic images (their requested class)
    per_class: dict[str, Detection] = field(default_factory=dict)  # detection by the image's class
    quality: Quality | None = None


@dataclass
class ReviewResults:
    n_images: int
    classes: list[str]
    reviewers: list[RaterResults]
    pooled: RaterResults
    fleiss_kappa: float | None         # real/synthetic calls, images answered by every reviewer
    fleiss_kappa_class: float | None   # class calls, same images
    kappa_images: int
    kappa_raters: int

    def to_json(self) -> dict:
        return asdict(self)


def _detection(pairs: list[tuple[Item, Answer]]) -> Detection:
    n = len(pairs)
    if n == 0:
        return Detection(0, 0, None, None, None, None, None, None)
    correct = sum(a.says == it.source for it, a in pairs)
    lo, hi = stats.clopper_pearson(correct, n)
    synth = [a.says == "synthetic" for it, a in pairs if it.source == "synthetic"]
    real = [a.says == "real" for it, a in pairs if it.source == "real"]
    return Detection(n, correct, correct / n, lo, hi, stats.binomial_p(correct, n),
                     sum(synth) / len(synth) if synth else None, sum(real) / len(real) if real else None)


def _share(xs: list[bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _rater(name: str, pairs: list[tuple[Item, Answer]], classes: list[str]) -> RaterResults:
    q_real = [a.quality for it, a in pairs if it.source == "real"]
    q_syn = [a.quality for it, a in pairs if it.source == "synthetic"]
    (rm, rs), (sm, ss) = stats.mean_sd(q_real), stats.mean_sd(q_syn)
    return RaterResults(
        name=name,
        answered=len(pairs),
        detection=_detection(pairs),
        class_accuracy_real=_share([a.label == it.label for it, a in pairs if it.source == "real"]),
        class_accuracy_synthetic=_share([a.label == it.label for it, a in pairs if it.source == "synthetic"]),
        per_class={c: _detection([(it, a) for it, a in pairs if it.label == c]) for c in classes},
        quality=Quality(len(q_real), rm, rs, len(q_syn), sm, ss, stats.mann_whitney_p(q_real, q_syn)),
    )


def _kappa(answers: list[Answer], raters: list[str], attr: str, categories: list[str]) -> tuple[float | None, int]:
    by_item: dict[int, dict[str, str]] = {}
    for a in answers:
        by_item.setdefault(a.item_id, {})[a.reviewer] = getattr(a, attr)
    full = [v for v in by_item.values() if len(v) == len(raters)]
    if len(raters) < 2 or not full:
        return None, len(full)
    index = {c: j for j, c in enumerate(categories)}
    counts = np.zeros((len(full), len(categories)))
    for i, calls in enumerate(full):
        for c in calls.values():
            counts[i, index[c]] += 1
    k = stats.fleiss_kappa(counts)
    return (k if np.isfinite(k) else None), len(full)


def compute_results(db: ReviewDB) -> ReviewResults:
    items = {it.id: it for it in db.items()}
    classes = stored_classes(db)
    answers = db.answers()
    names = [r.name for r in db.reviewers()]
    raters = [_rater(name, [(items[a.item_id], a) for a in answers if a.reviewer == name], classes) for name in names]
    pooled = _rater("pooled", [(items[a.item_id], a) for a in answers], classes)
    active = [r.name for r in raters if r.answered]
    kappa, n_k = _kappa(answers, active, "says", ["real", "synthetic"])
    labels = sorted(set(classes) | {a.label for a in answers})
    kappa_c, _ = _kappa(answers, active, "label", labels)
    return ReviewResults(len(items), classes, raters, pooled, kappa, kappa_c, n_k, len(active))


def write_results(review_dir: str | Path) -> tuple[ReviewResults, Path]:
    """Compute the results of the review in ``review_dir`` and write ``REVIEW_DIR/results.json``."""
    res = compute_results(ReviewDB(review_dir))
    path = Path(review_dir) / RESULTS_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res.to_json(), indent=2))
    tmp.replace(path)
    return res, path
