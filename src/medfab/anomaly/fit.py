"""``medfab anomaly fit``: train a VAE on the normal class and learn each detector's thresholds.

The VAE is :class:`medfab.models.vae.ConditionalVAE` with one class (normal), trained by the one training
loop (:func:`medfab.training.loop.fit`) on real, synthetic or mixed normal images. Thresholds always come
from REAL held-out images (the detector is deployed on real data): the data set's ``val`` split when it
has one, else a seeded ``val_fraction`` of each class of the training split. Abnormal images are never
trained on; those in the validation split let the thresholds maximise Youden's J.

The run folder holds the training loop's ``config.json`` and ``checkpoints/`` plus ``anomaly.json``
(settings, the pixel-error level ``tau``, feature standardisation and every detector's learnt state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from medfab.anomaly import recon
from medfab.anomaly.methods import GIAEM, METHODS, DBSCANDetector, ErrorSet, GlobalKMeans, SingleKMeans
from medfab.errors import MedfabError

ANOMALY_FILE = "anomaly.json"


class AnomalyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    normal_class: str
    training: Literal["real", "synthetic", "mixed"] = "real"
    size: int = Field(64, ge=8)
    seed: int = 0                                   # split, weights, batches, KMeans
    val_fraction: float = Field(0.2, gt=0, lt=1)    # of each class, when the data has no val split
    percentile: float = Field(95.0, gt=0, lt=100)   # threshold rule without abnormal validation images
    tau_percentile: float = Field(99.0, gt=0, lt=100)  # pixel-error level of the high-error-area feature
    feature_filter: int = Field(3, ge=0)            # median filter (pixels) of the maps before features
    dbscan_eps: float | None = Field(None, gt=0)    # None: k-distance elbow of normal validation features
    dbscan_min_samples: int = Field(5, ge=1)
    kmeans_score: Literal["mass", "size"] = "mass"
    model: dict[str, Any] = {}                      # VAE settings (e.g. width, latent_dim, batch_size)


def _load(root: Path, size: int, split: str | None, preprocess, progress: bool):
    from medfab.data import load_tensors

    return load_tensors(root, size=size, split=split, preprocess=preprocess, progress=progress)


def _class_index(classes: list[str], name: str, where: Path) -> int:
    if name not in classes:
        raise MedfabError(f"normal class '{name}' is not in {where} (classes: {', '.join(classes)})",
                          "pass --normal-class with one of those folder names")
    return classes.index(name)


def _split_val(y: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """Boolean validation mask: a seeded ``frac`` of each class (at least one image of a class of 2+)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = round(frac * len(idx)) if len(idx) > 1 else 0
        val[idx[:max(n, 1 if len(idx) > 1 else 0)]] = True
    return val


def prepare_data(cfg: AnomalyConfig, data: Path, synthetic: Path | None, progress: bool = True):
    """(training TensorSet of normal images, validation TensorSet with labels 1 = abnormal, summary)."""
    from medfab.data.tensors import TensorSet

    data = Path(data)
    if not data.is_dir():
        raise MedfabError(f"--data {data} is not a folder", "give the folder that holds one sub-folder per class")
    split = "train" if (data / "train").is_dir() else None
    real = _load(data, cfg.size, split, None, progress)
    k = _class_index(real.classes, cfg.normal_class, data)
    if (data / "val").is_dir():
        val = _load(data, cfg.size, "val", real.preprocess, progress)
        k_val = _class_index(val.classes, cfg.normal_class, data / "val")
        train_real = real.select(real.y == k)
    else:
        mask = _split_val(real.y, cfg.val_fraction, cfg.seed)
        val, k_val = real.select(mask), k
        train_real = real.select(~mask & (real.y == k))
    n_val_normal = int((val.y == k_val).sum())
    need = max(cfg.dbscan_min_samples + 1, 2)
    if n_val_normal < need:
        raise MedfabError(
            f"only {n_val_normal} normal validation images; clustering (DBSCAN, min_samples="
            f"{cfg.dbscan_min_samples}) needs at least {need}",
            f"add normal images (about {int(np.ceil(need / cfg.val_fraction))} '{cfg.normal_class}' images "
            f"with --val-fraction {cfg.val_fraction}), or raise the validation fraction")

    parts = []
    if cfg.training in ("real", "mixed"):
        parts.append(train_real)
    if cfg.training in ("synthetic", "mixed"):
        if synthetic is None:
            raise MedfabError(f"--training {cfg.training} needs synthetic images",
                              "pass --synthetic DIR (a folder written by medfab sample)")
        syn = _load(Path(synthetic), cfg.size, None, real.preprocess, progress)
        ks = _class_index(syn.classes, cfg.normal_class, Path(synthetic))
        parts.append(syn.select(syn.y == ks))
    x = np.concatenate([np.asarray(p.x) for p in parts])
    if len(x) < 2:
        raise MedfabError(f"only {len(x)} normal training images", "add images of the normal class")
    keys = [key for p in parts for key in p.keys]
    train = TensorSet(x, np.zeros(len(x), np.int64), [cfg.normal_class], keys, real.preprocess)
    val_bin = TensorSet(np.asarray(val.x), (val.y != k_val).astype(np.int64), ["normal", "abnormal"],
                        list(val.keys), real.preprocess)
    summary = {"path": str(data.resolve()), "split": split, "classes": list(real.classes),
               "synthetic": str(Path(synthetic).resolve()) if synthetic else None,
               "train_normal": len(train), "val_normal": n_val_normal,
               "val_abnormal": int((val.y != k_val).sum())}
    return train, val_bin, summary


def fit_detectors(cfg: AnomalyConfig, model, val_x: np.ndarray, val_abnormal: np.ndarray, *,
                  device: str = "cpu") -> dict:
    """Reconstruct the validation images (on ``device``) and fit every detector; returns the JSON-able state."""
    maps = recon.error_maps(val_x, recon.reconstruct(model, val_x, device=device))          # (N, H, W)
    normal = ~np.asarray(val_abnormal, bool)
    fmaps = recon.smooth(maps, cfg.feature_filter)                            # features read filtered maps
    tau = recon.high_error_level(fmaps[normal], cfg.tau_percentile)
    feats = recon.error_features(fmaps, tau)
    std = recon.Standardiser().fit(feats[normal])
    val = ErrorSet(maps, std.transform(feats), np.asarray(val_abnormal, bool))
    detectors = {
        "giaem": GIAEM(cfg.percentile),
        "dbscan": DBSCANDetector(cfg.dbscan_eps, cfg.dbscan_min_samples),
        "kmeans_single": SingleKMeans(cfg.percentile, cfg.kmeans_score),
        "kmeans_global": GlobalKMeans(cfg.seed),
    }
    assert set(detectors) == set(METHODS)
    return {"tau": tau, "standardiser": std.state(),
            "methods": {k: d.fit(val).state() for k, d in detectors.items()}}


# The budget when neither kimg nor minutes is given: the VAE of docs/anomaly.md's figures (12 kimg) and some.
DEFAULT_KIMG = 20.0


def fit_anomaly(cfg: AnomalyConfig, data: str | Path, out: str | Path, *, synthetic: str | Path | None = None,
                kimg: float | None = None, minutes: float | None = None, cpu_minutes: float | None = None,
                progress: bool = True, device: str = "auto") -> Path:
    """Train the normal-class VAE into ``out`` and write ``out/anomaly.json``; returns ``out``.

    Without ``kimg``, ``minutes`` or ``cpu_minutes`` the budget is :data:`DEFAULT_KIMG` thousand images.
    """
    import torch

    from medfab import __version__
    from medfab.models.registry import build_model
    from medfab.training.checkpoint import atomic_write_json, load_run
    from medfab.training.loop import fit

    if kimg is None and minutes is None and cpu_minutes is None:
        kimg = DEFAULT_KIMG
    out = Path(out)
    train, val, summary = prepare_data(cfg, Path(data), Path(synthetic) if synthetic else None, progress)
    shape = {"channels": int(train.x.shape[1]), "spatial_dims": train.x.ndim - 2}
    torch.manual_seed(cfg.seed)                                   # weight initialisation
    model, _ = build_model("vae", **{**cfg.model, "image_size": cfg.size, "num_classes": 1, **shape})
    config = {"medfab_version": __version__, "command": "anomaly fit", "anomaly": cfg.model_dump(),
              "data": summary}
    fit(model, train, out=out, kimg=kimg, minutes=minutes, cpu_minutes=cpu_minutes, seed=cfg.seed, config=config,
        progress=progress, device=device)
    model, _ = load_run(out)                                      # the saved checkpoint, as eval will see it
    state = fit_detectors(cfg, model, np.asarray(val.x), val.y.astype(bool), device=device)
    atomic_write_json(out / ANOMALY_FILE, {"config": cfg.model_dump(), "data": summary, **state})
    return out
