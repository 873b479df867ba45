"""The figures of an evaluation, drawn with matplotlib's Agg backend (no display needed) as PNG files.

Each function takes plain arrays/dicts, writes one PNG and returns its path. Colours are fixed so the same
set has the same colour in every figure: real (reference half A) blue, real half B grey, synthetic orange.
Images are (N, 1, H, W) in [-1, 1]; a 3D volume (N, 1, D, H, W) is shown by its middle slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt
import numpy as np

REAL, REAL_B, SYNTH = "#1f77b4", "#7f7f7f", "#ff7f0e"
_DPI = 90


def _slice2d(img: np.ndarray) -> np.ndarray:
    """(1, H, W) or (1, D, H, W) -> (H, W)."""
    a = np.asarray(img)[0]
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return path


def _panels(n: int, *, w: float = 3.0, h: float = 2.5, max_cols: int = 5):
    """A grid of ``n`` panels; constrained layout keeps titles, labels and the suptitle from overlapping."""
    cols = min(n, max_cols)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(w * cols, h * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def histogram_overlays(
    groups: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, *, bins: int = 64
) -> Path:
    """One panel per class: intensity densities of real A, real B (dashed) and synthetic on [-1, 1]."""
    fig, axes = _panels(len(groups))
    edges = np.linspace(-1, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for ax, (name, (ra, rb, sy)) in zip(axes, groups.items()):
        for x, label, colour, style in (
            (ra, "real A", REAL, "-"),
            (rb, "real B", REAL_B, "--"),
            (sy, "synthetic", SYNTH, "-"),
        ):
            if x is None or len(x) == 0:
                continue
            d, _ = np.histogram(np.clip(np.asarray(x).ravel(), -1, 1), bins=edges, density=True)
            ax.plot(centres, d, style, color=colour, label=label, lw=1.4)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("intensity", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("Pixel intensity histograms (log density)", fontsize=11)
    return _save(fig, path)


def value_distributions(
    groups: dict[str, dict[str, Sequence[float]]], path: Path, *, title: str, xlabel: str
) -> Path:
    """One panel per class: overlaid histograms of a per-image value (brain mass, MS-SSIM) per set."""
    colours = {"real": REAL, "real A": REAL, "real B": REAL_B, "real A vs B": REAL_B, "synthetic": SYNTH}
    fig, axes = _panels(len(groups))
    for ax, (name, sets) in zip(axes, groups.items()):
        finite = [np.asarray(v, dtype=float) for v in sets.values() if v is not None and len(v)]
        allv = np.concatenate(finite) if finite else np.zeros(1)
        lo, hi = float(allv.min()), float(allv.max())
        edges = np.linspace(lo, hi + 1e-9 if hi > lo else lo + 1, 21)
        for label, v in sets.items():
            if v is None or len(v) == 0:
                continue
            v = np.asarray(v, dtype=float)
            c = colours.get(label, None)
            ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.18, color=c)
            ax.hist(v, bins=edges, density=True, histtype="step", lw=1.6, color=c, label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def confusion_matrix(
    confusion: Sequence[Sequence[float]],
    classes: list[str],
    path: Path,
    *,
    title: str = "Class fidelity: requested (rows) vs recognised (columns)",
) -> Path:
    """Row-normalised confusion matrix with the counts written in each cell."""
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.0 * k + 1.8))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{frac[i, j]:.2f}\n({round(m[i, j])})",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(k), classes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("recognised as")
    ax.set_ylabel("requested class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def utility_bars(rows: list[dict], metrics: list[str], path: Path) -> Path:
    """Grouped bars: one group per training regime, one bar per metric, error bars = std over seeds.

    ``rows``: ``[{"training_data": "real", "<metric>": mean, "<metric>_std": std, ...}]`` (utility table).
    """
    fig, ax = plt.subplots(figsize=(max(5.5, 1.9 * len(rows) + 1), 3.4))
    width = 0.8 / max(1, len(metrics))
    cmap = plt.get_cmap("tab10")
    for j, met in enumerate(metrics):
        means = [float(r.get(met, 0.0)) for r in rows]
        stds = [float(r.get(f"{met}_std", 0.0)) for r in rows]
        xs = np.arange(len(rows)) + (j - (len(metrics) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=met.replace("_", " "), color=cmap(j))
    ax.set_xticks(range(len(rows)), [str(r.get("training_data", "?")) for r in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score on the real test set")
    ax.legend(fontsize=7, ncol=len(metrics), loc="upper right")
    ax.set_title("Utility: CNN trained on each set, tested on real (mean ± std over seeds)", fontsize=10)
    return _save(fig, path)


def share_sweep(
    shares: Sequence[float], curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path
) -> Path:
    """Metric (mean ± std) against the synthetic share of a fixed-size training set."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    s = np.asarray(shares, dtype=float)
    for name, (mean, std) in curves.items():
        m, d = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        ax.plot(s, m, "o-", label=name.replace("_", " "))
        ax.fill_between(s, m - d, m + d, alpha=0.2)
    ax.set_xlabel("synthetic share of the training set")
    ax.set_ylabel("score on the real test set")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Share sweep (training-set size fixed)", fontsize=10)
    return _save(fig, path)


def image_grid(rows: list[tuple[str, np.ndarray]], path: Path, *, title: str = "", per_row: int = 8) -> Path:
    """A grid with one labelled row per ``(label, images)`` entry; images (n, 1, H, W) in [-1, 1]."""
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.1 * per_row + 1.2, 1.15 * len(rows) + 0.4), squeeze=False
    )
    for r, (label, imgs) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(imgs):
                ax.imshow(_slice2d(imgs[c]), cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.04, hspace=0.08)
    return _save(fig, path)


def pair_gallery(
    synth: np.ndarray,
    nearest: np.ndarray,
    distances: Sequence[float],
    path: Path,
    *,
    title: str = "Closest synthetic / training pairs",
) -> Path:
    """Columns of (synthetic above, its nearest training image below), labelled with the distance."""
    n = len(synth)
    fig, axes = plt.subplots(2, max(1, n), figsize=(1.3 * max(1, n) + 1, 3.0), squeeze=False)
    for i in range(n):
        for r, img in enumerate((synth[i], nearest[i])):
            ax = axes[r, i]
            ax.imshow(_slice2d(img), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, i].set_xlabel(f"d={float(distances[i]):.3g}", fontsize=8)
    axes[0, 0].set_ylabel("synthetic", fontsize=9)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
