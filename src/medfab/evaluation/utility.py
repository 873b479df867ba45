"""Utility of a synthetic set: does a classifier trained with it do as well on *real* test images?

One shared :class:`~medfab.evaluation.classifier.SmallCNN` is trained per regime and seed, always tested on the
real test set (train-synthetic-test-real, Esteban et al. 2017):

* ``real``                    the real training set (the reference)
* ``synthetic``               synthetic only; with ``size_matched`` the same size and class counts as real
* ``real+synthetic``          the real set plus that synthetic set
* ``real+synthetic top-up``   the classic augmentation: minority classes topped up with synthetic images to
                              the majority class's count
* ``synthetic share s``       a sweep at the real set's size and class counts, a share ``s`` of each class
                              replaced by synthetic images (0 = real, 1 = size-matched synthetic)

Draws are nested per seed and class (the first m images of one fixed permutation), so neighbouring shares differ
only by the swapped images; identical training sets are trained once. Where a class has fewer synthetic images
than asked, the extra ones are drawn with replacement and a note says so. Training sets with identical contents
(e.g. share 0 and ``real``) are trained once per seed.

Two classifiers (``model``):

* ``"cnn"``: a SmallCNN trained from scratch per regime and seed (the full study: about 21 CNN trainings, hours on
  a 2-core laptop for 5,000 images at 64²);
* ``"features"``: a class-weighted multinomial logistic regression on fixed per-image features (in ``medfab
  evaluate``: the cached, standardised FeatureNet embedding, trained on real half A): seconds per regime, so the
  default evaluation keeps every regime and 3 seeds. It measures whether the synthetic images carry the class
  information that a real-trained embedding exposes -- a linear probe, not a from-scratch training; its seed
  spread (only the nested draws vary) is much smaller than a CNN's, so compare its intervals with each other only.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError

GOAL_RATIO = 0.9   # the project's headline goal: synthetic-only reaches 90 % of real-only
METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy, per-class and macro precision / recall / F1 (sklearn.metrics).

    Per-class and macro figures run over the classes present in ``y_true`` (a class absent from the test set
    cannot be scored); precision of a never-predicted class counts as 0.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

    labels = np.unique(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # "y_pred contains classes not in y_true": expected for bad models
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        bacc = balanced_accuracy_score(y_true, y_pred)
    names = [classes[i] for i in labels]
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "balanced_accuracy": float(bacc),
            "macro_precision": float(p.mean()), "macro_recall": float(r.mean()), "macro_f1": float(f.mean()),
            "precision": dict(zip(names, map(float, p))), "recall": dict(zip(names, map(float, r))),
            "f1": dict(zip(names, map(float, f)))}


def _aggregate(runs: list[dict]) -> tuple[dict, dict]:
    """Mean and std (ddof=1 over seeds; 0 for one seed) of every number in same-shaped nested dicts."""
    def walk(items):
        if isinstance(items[0], dict):
            pairs = {k: walk([d[k] for d in items]) for k in items[0]}
            return {k: v[0] for k, v in pairs.items()}, {k: v[1] for k, v in pairs.items()}
        a = np.asarray(items, dtype=np.float64)
        return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return walk(runs)


class _Pools:
    """Per-seed, per-class fixed orderings of the real and synthetic images, from which every regime draws."""

    def __init__(self, real_y, synth_y, k: int, seed: int, need: int):
        rng = np.random.default_rng([seed, 20201])
        self.real = [rng.permutation(np.flatnonzero(real_y == c)) for c in range(k)]
        self.synth, self.short = [], set()
        for c in range(k):
            pool = rng.permutation(np.flatnonzero(synth_y == c))
            if 0 < len(pool) < need:        # extend with replacement, once, so draws stay nested
                pool = np.concatenate([pool, rng.choice(pool, need - len(pool))])
            self.synth.append(pool)

    def take_synth(self, c: int, m: int, classes) -> np.ndarray:
        if m > 0 and len(self.synth[c]) == 0:
            return np.zeros(0, dtype=np.int64)
        if m > len(np.unique(self.synth[c][:m])):
            self.short.add(classes[c])
        return self.synth[c][:m]


def _plan(real_y, synth_y, k, seed, shares, size_matched, classes, mixed=True) -> tuple[dict, set]:
    """{regime name: (real indices, synthetic indices)} for one seed."""
    n = np.bincount(real_y, minlength=k)
    majority = int(n.max())
    pools = _Pools(real_y, synth_y, k, seed, need=majority)   # no regime asks for more than the majority
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64)
    all_real = cat(pools.real)
    if size_matched:
        synth_only = cat([pools.take_synth(c, int(n[c]), classes) for c in range(k)])
    else:
        synth_only = np.arange(len(synth_y), dtype=np.int64)
    plan = {"real": (all_real, np.zeros(0, np.int64)), "synthetic": (np.zeros(0, np.int64), synth_only)}
    if mixed:
        plan["real+synthetic"] = (all_real, synth_only)
        plan["real+synthetic top-up"] = (all_real, cat([pools.take_synth(c, majority - int(n[c]), classes)
                                                        for c in range(k)]))
    for s in shares:
        m = np.rint(s * n).astype(int)                                       # synthetic per class
        plan[f"synthetic share {s:g}"] = (cat([pools.real[c][:n[c] - m[c]] for c in range(k)]),
                                          cat([pools.take_synth(c, int(m[c]), classes) for c in range(k)]))
    return plan, pools.short


def _check(real_train: TensorSet, real_test: TensorSet, synth: TensorSet, seeds, shares) -> None:
    if len(np.unique(real_train.y)) < 2:
        raise MedfabError("the real training set has fewer than 2 classes", "give a labelled set with 2+ classes")
    if len(real_test) < 2 or len(synth) < 2:
        raise MedfabError(f"too few images: {len(real_test)} real test, {len(synth)} synthetic",
                          "the utility study needs a real test split and a fabricated set (hundreds each)")
    if len(seeds) < 1 or any(not 0 <= s <= 1 for s in shares):
        raise MedfabError(f"bad seeds {seeds} or shares {shares}", "use >= 3 seeds and shares within [0, 1]")


def utility_study(real_train: TensorSet, real_test: TensorSet, synth: TensorSet, *, seeds=(0, 1, 2),
                  shares=(0, 0.25, 0.5, 0.75, 1.0), epochs: int = 15, size_matched: bool = True,
                  progress: bool = True, mixed: bool = True, width: int = 16, batch_size: int = 64,
                  device: str = "cpu", model: str = "cnn", features=None) -> dict:
    """Train-on-{real, synthetic, mixed}, test-on-real study; see the module docstring for the regimes.

    Returns ``classes``, ``seeds``, ``regimes`` ({name: n_train, counts, per_seed, mean, std}), ``share_sweep``
    (list over shares), ``table`` (rows: model x training data; columns: metrics, mean and std over seeds),
    ``ratio_to_real`` (synthetic-only / real-only balanced accuracy and macro-F1, goal >= 0.9),
    ``recall_delta`` (per-class recall of each mixed regime minus real) and ``notes``. Deterministic in seeds.
    ``mixed=False`` skips the two mixed regimes (a quicker study). ``model="features"`` trains a logistic
    regression on ``features`` = (real_train, real_test, synthetic) arrays (N, F), one row per image in set order,
    instead of a CNN on pixels (see the module docstring).
    """
    from tqdm import tqdm

    from medfab.evaluation.classifier import predict_proba, train_classifier

    seeds, shares = tuple(seeds), tuple(float(s) for s in shares)
    _check(real_train, real_test, synth, seeds, shares)
    if model not in ("cnn", "features"):
        raise MedfabError(f"unknown utility model {model!r}", "use 'features' (fast) or 'cnn' (the full study)")
    if model == "features":
        inputs = _check_features(features, (len(real_train), len(real_test), len(synth)))
    else:
        inputs = (real_train.x, real_test.x, synth.x)
    classes = list(real_train.classes)
    test, synth = real_test.with_classes(classes), synth.with_classes(classes)
    k = len(classes)
    plans, short = {}, set()
    for seed in seeds:
        plans[seed], s_short = _plan(real_train.y, synth.y, k, seed, shares, size_matched, classes, mixed)
        short |= s_short
    # identical training data (share 0 = real; share 1 = size-matched synthetic; synthetic = the real set in a
    # sanity run) gives an identical model: train it once per seed
    trained, runs = {}, {}
    jobs = [(seed, name) for seed in seeds for name in plans[seed]]
    for seed, name in tqdm(jobs, desc="utility study", unit="set", disable=not progress):
        ir, is_ = plans[seed][name]
        x = np.concatenate([inputs[0][ir], inputs[2][is_]])           # (n, 1, H, W) images or (n, F) features
        y = np.concatenate([real_train.y[ir], synth.y[is_]])
        key = (seed, hashlib.blake2b(x.tobytes() + y.tobytes(), digest_size=16).hexdigest())
        if key not in trained:
            if model == "features":
                pred = _feature_head(x, y, k, seed).predict(inputs[1])
            else:
                net = train_classifier(x, y, k, epochs=epochs, seed=seed, width=width, batch_size=batch_size,
                                       device=device)
                pred = predict_proba(net, inputs[1]).argmax(axis=1)
            trained[key] = classification_metrics(test.y, pred, classes)
        runs[seed, name] = trained[key]
    regimes = {}
    for name, (ir0, is0) in plans[seeds[0]].items():
        per_seed = [runs[s, name] for s in seeds]
        mean, std = _aggregate(per_seed)
        y = np.concatenate([real_train.y[ir0], synth.y[is0]])
        regimes[name] = {"n_train": len(y), "n_synthetic": len(is0),
                         "counts": {c: int((y == i).sum()) for i, c in enumerate(classes)},
                         "per_seed": per_seed, "mean": mean, "std": std}
    label = f"SmallCNN (width {width})" if model == "cnn" else "logistic regression on FeatureNet features"
    return _summarise(regimes, classes, seeds, shares, short, len(test), label)


def _check_features(features, sizes: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    if features is None or len(features) != 3:
        raise MedfabError("the 'features' utility model needs features of the real train, real test and synthetic "
                          "sets", "pass features=(f_train, f_test, f_synth), or use model='cnn'")
    out = tuple(np.asarray(f, dtype=np.float64) for f in features)
    for f, n, name in zip(out, sizes, ("real train", "real test", "synthetic")):
        if f.ndim != 2 or len(f) != n or not np.isfinite(f).all():
            raise MedfabError(f"{name} features have shape {f.shape}; expected ({n}, F), finite",
                              "extract one feature row per image, in the order of the set")
    return out


def _feature_head(x: np.ndarray, y: np.ndarray, k: int, seed: int):
    """Class-weighted multinomial logistic regression on (standardised) features; deterministic (lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    counts = np.bincount(y, minlength=k)
    weight = {c: len(y) / (k * n) for c, n in enumerate(counts) if n > 0}  # as train_classifier's class weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # ConvergenceWarning on separable data: the fit is still usable
        return LogisticRegression(C=1.0, max_iter=300, class_weight=weight, random_state=seed).fit(x, y)


def _row(name: str, reg: dict, label: str) -> dict:
    row = {"model": label, "training_data": name, "n_train": reg["n_train"]}
    for m in METRICS:
        row[m], row[f"{m}_std"] = reg["mean"][m], reg["std"][m]
    return row


def _ratio(num: float, den: float):
    return float(num / den) if den > 0 else None      # None (null), never NaN, when real scores 0


def _summarise(regimes, classes, seeds, shares, short, n_test, label) -> dict:
    real, syn = regimes["real"]["mean"], regimes["synthetic"]["mean"]
    ratio = {m: _ratio(syn[m], real[m]) for m in ("balanced_accuracy", "macro_f1")}
    ratio["goal"] = GOAL_RATIO
    ratio["meets_goal"] = all(v is not None and v >= GOAL_RATIO for v in (ratio["balanced_accuracy"],
                                                                          ratio["macro_f1"]))
    delta = {name: {c: float(regimes[name]["mean"]["recall"][c] - real["recall"][c]) for c in real["recall"]}
             for name in ("real+synthetic", "real+synthetic top-up") if name in regimes}
    sweep = []
    for s in shares:
        reg = regimes[f"synthetic share {s:g}"]
        sweep.append({"share": s, "n_train": reg["n_train"],
                      **{m: reg["mean"][m] for m in METRICS}, **{f"{m}_std": reg["std"][m] for m in METRICS}})
    notes = []
    if short:
        notes.append(f"too few synthetic images of {sorted(short)}: the missing ones were drawn with replacement")
    missing = [c for c in classes if regimes["synthetic"]["counts"][c] == 0]
    if missing:
        notes.append(f"no synthetic images of {missing}: synthetic-only models cannot predict them")
    return {"classes": classes, "seeds": list(seeds), "n_test": int(n_test), "regimes": regimes,
            "share_sweep": sweep, "table": [_row(n, r, label) for n, r in regimes.items()],
            "ratio_to_real": ratio, "recall_delta": delta, "notes": notes}
