"""Binary detection metrics with abnormal = 1 = positive, from labels (and scores where a method has them)."""

from __future__ import annotations

import numpy as np


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None          # undefined (e.g. precision with no positive call) -> None, not 0


def binary_metrics(abnormal: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """accuracy, precision, recall, F1, AUC (None when undefined) and the confusion counts tp/fp/tn/fn."""
    t = np.asarray(abnormal, bool)
    p = np.asarray(predicted, bool)
    tp, fp = int((t & p).sum()), int((~t & p).sum())
    tn, fn = int((~t & ~p).sum()), int((t & ~p).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    auc = None
    if scores is not None and t.any() and (~t).any() and np.isfinite(scores).all():
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(t, scores))
    return {"accuracy": _ratio(tp + tn, len(t)), "precision": precision, "recall": recall, "f1": f1,
            "auc": auc, "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": len(t)}
