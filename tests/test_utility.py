"""Utility study: metrics against sklearn, the regimes' training sets, and an end-to-end run on easy blobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medfab.data.tensors import TensorSet
from medfab.evaluation.class_fidelity import class_fidelity
from medfab.evaluation.utility import _aggregate, _plan, classification_metrics, utility_study

torch.set_num_threads(1)


def blob_set(n_per_class, seed: int, size: int = 32, classes=("top", "bottom")) -> TensorSet:
    """Bright blob in the top (class 0) or bottom (class 1) half: easy, and immune to left-right flips."""
    rng = np.random.default_rng(seed)
    counts = [n_per_class] * 2 if np.isscalar(n_per_class) else list(n_per_class)
    y = np.repeat(np.arange(2), counts)
    yy, xx = np.mgrid[:size, :size]
    cy = rng.uniform(0.15, 0.35, len(y)) * size + y * size / 2
    cx = rng.uniform(0.2, 0.8, len(y)) * size
    r = size / 8
    g = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * r * r))
    x = np.clip(2 * g - 1 + rng.normal(0, 0.05, g.shape), -1, 1)[:, None].astype(np.float32)
    return TensorSet(x, y.astype(np.int64), list(classes), [f"{seed}/{i}" for i in range(len(y))])


def test_metrics_match_sklearn_on_a_hand_case():
    from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score

    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["recall"] == pytest.approx({"a": 1 / 2, "b": 1.0, "c": 2 / 3})
    assert m["precision"] == pytest.approx({"a": 1 / 2, "b": 2 / 3, "c": 1.0})
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro"))
    assert m["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))


def test_aggregate_mean_and_sample_std():
    mean, std = _aggregate([{"a": 1.0, "r": {"x": 0.0}}, {"a": 3.0, "r": {"x": 1.0}}])
    assert mean == {"a": 2.0, "r": {"x": 0.5}}
    assert std["a"] == pytest.approx(np.sqrt(2)) and std["r"]["x"] == pytest.approx(np.sqrt(0.5))


def test_regime_training_sets():
    real_y = np.repeat([0, 1], [40, 10])
    synth_y = np.repeat([0, 1], [20, 50])                  # too few synthetic images of class 0
    plan, short = _plan(real_y, synth_y, 2, seed=0, shares=(0, 0.5, 1.0), size_matched=True, classes=["a", "b"])
    count = lambda idx, y: np.bincount(y[idx], minlength=2).tolist()
    assert count(plan["real"][0], real_y) == [40, 10] and len(plan["real"][1]) == 0
    assert count(plan["synthetic"][1], synth_y) == [40, 10] and short == {"a"}
    r, s = plan["real+synthetic top-up"]
    assert count(r, real_y) == [40, 10] and count(s, synth_y) == [0, 30]      # minority up to 40
    r, s = plan["synthetic share 0.5"]
    assert count(r, real_y) == [20, 5] and count(s, synth_y) == [20, 5]
    assert set(s) <= set(plan["synthetic"][1])                                   # nested draws
    for a, b in zip(plan["synthetic share 0"], plan["real"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(plan["synthetic share 1"], plan["synthetic"]):
        np.testing.assert_array_equal(a, b)
    again, _ = _plan(real_y, synth_y, 2, seed=0, shares=(0, 0.5, 1.0), size_matched=True, classes=["a", "b"])
    assert all((again[k][i] == plan[k][i]).all() for k in plan for i in (0, 1))   # deterministic


def test_utility_study_on_blobs_and_shuffled_labels():
    real, test, synth = blob_set(48, 0), blob_set(30, 1), blob_set(48, 2)
    kw = {"seeds": (0, 1), "shares": (0.5,), "epochs": 6, "progress": False, "width": 8, "batch_size": 16}
    good = utility_study(real, test, synth, **kw)
    reg = good["regimes"]
    assert reg["real"]["mean"]["balanced_accuracy"] > 0.8
    assert reg["synthetic"]["mean"]["balanced_accuracy"] > 0.8
    assert good["ratio_to_real"]["balanced_accuracy"] > 0.8
    names = [row["training_data"] for row in good["table"]]
    assert names[:4] == ["real", "synthetic", "real+synthetic", "real+synthetic top-up"]
    assert {"accuracy", "accuracy_std", "macro_f1", "balanced_accuracy"} <= set(good["table"][0])
    assert set(good["recall_delta"]["real+synthetic"]) == {"top", "bottom"}
    assert [p["share"] for p in good["share_sweep"]] == [0.5]
    assert good["share_sweep"][0]["balanced_accuracy"] > 0.8
    import json
    json.dumps(good)                                                      # JSON-serialisable, no NaN
    # labels independent of the images: exactly half of each class relabelled to the other class
    y = synth.y.copy()
    for c in (0, 1):
        idx = np.flatnonzero(synth.y == c)
        y[np.random.default_rng(c).choice(idx, len(idx) // 2, replace=False)] = 1 - c
    bad = utility_study(real, test, TensorSet(synth.x, y, synth.classes, synth.keys),
                        **{**kw, "seeds": (0,), "shares": ()})
    assert abs(bad["regimes"]["synthetic"]["mean"]["balanced_accuracy"] - 0.5) < 0.2
    assert bad["regimes"]["real"]["per_seed"][0] == reg["real"]["per_seed"][0]   # deterministic in the seed
    assert not bad["ratio_to_real"]["meets_goal"]


def test_class_fidelity_recognises_good_and_swapped_labels():
    real, test = blob_set(48, 0), blob_set(20, 1)
    from medfab.evaluation.classifier import train_classifier

    clf = train_classifier(real.x, real.y, 2, epochs=6, width=8, batch_size=16, seed=0)
    synth = blob_set((20, 10), 2)
    good = class_fidelity(real, synth, classifier=clf, real_test=test)
    conf = np.array(good["confusion"])
    assert conf.sum(axis=1).tolist() == [20, 10]                          # rows = requested class
    assert good["balanced_accuracy"] > 0.8 and good["real_test_baseline"]["balanced_accuracy"] > 0.8
    swapped = TensorSet(synth.x, 1 - synth.y, synth.classes, synth.keys)  # a label-swapping generator
    assert class_fidelity(real, swapped, classifier=clf)["balanced_accuracy"] < 0.2
    one = class_fidelity(real, synth.select(synth.y == 0), classifier=clf)
    assert one["missing_classes"] == ["bottom"] and list(one["recognition_rate"]) == ["top"]


def test_feature_head_study_is_fast_deterministic_and_checks_its_input():
    """model="features": logistic regressions on per-image features, every regime, deterministic."""
    from medfab.errors import MedfabError

    real, test, synth = blob_set(30, 0), blob_set(20, 1), blob_set(30, 2)
    feats = tuple(s.x.reshape(len(s), 32, 32).mean(2) for s in (real, test, synth))   # (N, 32) row profiles
    kw = {"seeds": (0, 1), "progress": False, "model": "features", "features": feats}
    a, b = utility_study(real, test, synth, **kw), utility_study(real, test, synth, **kw)
    assert a["table"] == b["table"]
    assert set(a["regimes"]) >= {"real", "synthetic", "real+synthetic", "real+synthetic top-up"}
    assert a["table"][0]["model"] == "logistic regression on FeatureNet features"
    assert a["regimes"]["real"]["mean"]["balanced_accuracy"] > 0.9          # the row profile shows the blob
    assert a["regimes"]["synthetic"]["mean"]["balanced_accuracy"] > 0.9
    with pytest.raises(MedfabError, match="needs features"):
        utility_study(real, test, synth, seeds=(0,), progress=False, model="features")
    with pytest.raises(MedfabError, match="expected"):
        utility_study(real, test, synth, seeds=(0,), progress=False, model="features",
                      features=(feats[0][:-1], feats[1], feats[2]))
    with pytest.raises(MedfabError, match="unknown utility model"):
        utility_study(real, test, synth, seeds=(0,), progress=False, model="svm")
