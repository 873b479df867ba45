"""Figures of an anomaly evaluation: ROC curves and input | reconstruction | error-map galleries."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")                # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def roc_figure(abnormal: np.ndarray, scores: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """One ROC curve per method that gives a finite score; abnormal = positive."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2), dpi=110)
    for name, s in scores.items():
        if s is None or not np.isfinite(s).all() or abnormal.all() or not abnormal.any():
            continue
        fpr, tpr, _ = roc_curve(abnormal, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(abnormal, s):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate (abnormal)", title=title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def error_gallery(x: np.ndarray, x_hat: np.ndarray, maps: np.ndarray, abnormal: np.ndarray, path: Path, *,
                  per_group: int = 4, seed: int = 0, title: str = "") -> Path:
    """Rows of input | reconstruction | error map for ``per_group`` normal then abnormal test images (2D).

    Error maps share one colour scale (0 .. 99th percentile of the shown maps) so rows compare.
    """
    plt = _plt()
    rng = np.random.default_rng(seed)
    rows = []
    for flag, name in ((False, "normal"), (True, "abnormal")):
        idx = np.flatnonzero(abnormal == flag)
        rows += [(i, name) for i in sorted(rng.choice(idx, min(per_group, len(idx)), replace=False))]
    if not rows:
        rows = [(0, "")]
    vmax = float(np.percentile(maps[[i for i, _ in rows]], 99)) or 1.0
    fig, axes = plt.subplots(len(rows), 3, figsize=(6, 2 * len(rows)), dpi=90, squeeze=False)
    mid = lambda a: a[a.shape[0] // 2] if a.ndim == 3 else a
    for r, (i, name) in enumerate(rows):
        panels = [(mid(x[i, 0]), "gray", (-1, 1)), (mid(x_hat[i, 0]), "gray", (-1, 1)),
                  (mid(maps[i]), "inferno", (0, vmax))]
        for c, (img, cmap, (lo, hi)) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(("input", "reconstruction", "|error|")[c], fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
