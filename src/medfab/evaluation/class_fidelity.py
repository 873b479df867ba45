"""Class fidelity: does a classifier trained on real images recognise the class each synthetic image was made for?

The classifier is the shared four-stage :class:`~medfab.evaluation.classifier.SmallCNN`. A recognition rate near
the classifier's own accuracy on real test images means the generator honours its label; a rate near chance
means the conditioning is ignored. Pass ``real_test`` to get that reference (``real_test_baseline``): on hard
data (Alzheimer stages) even real images are recognised far below 100 %.
"""

from __future__ import annotations

import numpy as np

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts, rows = true (requested) class, columns = predicted class."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _summary(conf: np.ndarray, classes: list[str]) -> dict:
    """Recognition rate per class present (rows with images) and their mean (= balanced accuracy)."""
    rows = conf.sum(axis=1)
    rates = {c: float(conf[i, i] / rows[i]) for i, c in enumerate(classes) if rows[i] > 0}
    return {"confusion": conf.tolist(), "recognition_rate": rates,
            "balanced_accuracy": float(np.mean(list(rates.values()))),
            "missing_classes": [c for i, c in enumerate(classes) if rows[i] == 0]}


def class_fidelity(real_train: TensorSet, synth: TensorSet, seed: int = 0, epochs: int = 15, classifier=None,
                   *, real_test: TensorSet | None = None, progress: bool = False, device="cpu") -> dict:
    """Classify ``synth`` with a CNN trained on ``real_train`` (or the given, already trained ``classifier``).

    Returns ``classes``, ``confusion`` (rows = requested class, columns = predicted), ``recognition_rate``
    per class (classes without synthetic images are listed in ``missing_classes`` instead),
    ``balanced_accuracy`` (mean recognition rate) and, with ``real_test``, ``real_test_baseline`` (the same
    summary for real test images). Deterministic in ``seed`` (on one device); the CNN trains on ``device``.
    """
    from medfab.evaluation.classifier import predict_proba, train_classifier

    classes = list(real_train.classes)
    if len(synth) == 0:
        raise MedfabError("the synthetic set is empty", "fabricate images before measuring class fidelity")
    synth = synth.with_classes(classes)
    if classifier is None:
        if len(real_train) < 2 or len(np.unique(real_train.y)) < 2:
            raise MedfabError("the real training set needs images of at least 2 classes to train a classifier",
                              "check the data folder: one sub-folder per class")
        classifier = train_classifier(real_train.x, real_train.y, len(classes), epochs=epochs, seed=seed,
                                      progress=progress, device=device)
    pred = predict_proba(classifier, synth.x).argmax(axis=1)
    if pred.max() >= len(classes):
        raise MedfabError(f"the classifier predicts {pred.max() + 1}+ classes but the data has {len(classes)}",
                          "pass a classifier trained on the same class list")
    out = {"classes": classes, **_summary(_confusion(synth.y, pred, len(classes)), classes)}
    if real_test is not None:
        real_test = real_test.with_classes(classes)
        pred_t = predict_proba(classifier, real_test.x).argmax(axis=1)
        out["real_test_baseline"] = _summary(_confusion(real_test.y, pred_t, len(classes)), classes)
    return out
