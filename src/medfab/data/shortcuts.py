"""Shortcut check: can the class be told from how an image was stored, without looking at the anatomy?

On Br35H the median image size differs by class (about 283 x 342 "yes" vs 227 x 238 "no"); after padding to a
square, a classifier (or a generator's discriminator) can learn the label from the padding alone. This module
asks a plain question of a few numbers per image -- height, width, aspect ratio and storage mode (the
*acquisition* group), and mean, spread and dark fraction of the raw thumbnail (the *intensity* group) -- :
does a small cross-validated classifier on those numbers alone beat chance? The score is the balanced
accuracy (chance is 1 / number of classes whatever the imbalance) of the better of a logistic regression and a
depth-3 decision tree, 5-fold stratified, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PER_CLASS = 10  # fewer images of a class: no cross-validation worth the name
MARGIN = 0.15  # balanced accuracy this far above chance is called a shortcut


@dataclass
class ShortcutResult:
    group: str  # "acquisition" (size, aspect ratio, mode) or "intensity" (mean, spread, dark fraction)
    features: list[str]
    balanced_accuracy: float  # cross-validated, the better of the two classifiers
    chance: float  # 1 / number of classes
    n: int  # images used

    @property
    def leaks(self) -> bool:
        return self.balanced_accuracy >= self.chance + MARGIN


def _score(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    folds = int(min(5, np.bincount(y).min()))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    models = [make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
              DecisionTreeClassifier(max_depth=3, random_state=seed)]
    with warnings.catch_warnings():  # constant features, convergence: the score still says what it says
        warnings.simplefilter("ignore")
        return max(float(np.mean(cross_val_score(m, x, y, cv=cv, scoring="balanced_accuracy"))) for m in models)


def check_shortcuts(sizes: list[tuple[int, ...]], modes: list[str], thumbs: list[np.ndarray | None],
                    labels: list[str], *, seed: int = 0, max_n: int = 4000) -> list[ShortcutResult]:
    """Cross-validated balanced accuracy of each feature group; [] when there is too little data to say.

    ``sizes``/``modes``/``thumbs``/``labels`` describe the same readable images (thumbs: raw 32x32, or None
    for a blank image). At most ``max_n`` images are used (a seeded random subset).
    """
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2 or np.bincount(y).min() < MIN_PER_CLASS:
        return []
    idx = np.arange(len(y))
    if len(idx) > max_n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_n, replace=False))
    y = y[idx]
    if np.bincount(y, minlength=len(classes)).min() < 2:
        return []
    mode_ids = {m: i for i, m in enumerate(sorted(set(modes)))}
    geo = np.array([[sizes[i][-2], sizes[i][-1], np.log(sizes[i][-1] / max(sizes[i][-2], 1)), mode_ids[modes[i]]]
                    for i in idx], dtype=np.float64)
    out = [ShortcutResult("acquisition", ["height", "width", "aspect ratio", "mode"], _score(geo, y, seed),
                          1 / len(classes), len(idx))]
    rows = []
    for i in idx:
        t = thumbs[i]
        if t is None:
            rows.append([0.0, 0.0, 1.0])
            continue
        t = np.asarray(t, np.float64).reshape(-1)
        lo, hi = float(t.min()), float(t.max())
        rows.append([t.mean(), t.std(), float(np.mean(t <= lo + 0.1 * (hi - lo)))])
    out.append(ShortcutResult("intensity", ["mean", "standard deviation", "dark fraction"],
                              _score(np.array(rows), y, seed), 1 / len(classes), len(idx)))
    return out
