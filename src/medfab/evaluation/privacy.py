"""Privacy audit: has the generator memorised (near-copied) training images?

Every figure is compared with the same figure for *held-out real* images, which were never seen in training: a
generator that generalises should look like a fresh sample of real data, not closer to the training set.

* nearest-neighbour distance of each synthetic image to the training set, in pixel space and (optionally) in a
  feature space, and the ratio of first to second neighbour distance (near 0 = a copy of one image);
* copy rate: the fraction of synthetic images closer to a training image than the 5th percentile of the
  holdout-to-train nearest-neighbour distances (so held-out real images have a "copy rate" of 5 % by
  construction, the baseline), or than an explicit threshold;
* authenticity (Alaa et al. 2022): a sample is *unauthentic* when it is closer to its nearest training image
  than that training image is to its own nearest training neighbour; reported as the authentic fraction for
  synthetic and held-out images;
* membership inference (distance-to-synthetic attack, Hilprecht et al. 2019 style): score each real image by
  minus its distance to the nearest synthetic image; ROC AUC of train (members) vs holdout (non-members).
  0.5 = no leakage; well above 0.5 = the synthetic set reveals who was in training.

Pixel distances are root-mean-square differences of the [-1, 1] images (L2 / sqrt(pixels)), after area
downsampling to ``pixel_size`` (64 by default, which keeps 5,000 x 5,000 at 128^2 in a few hundred MB); an
explicit ``copy_threshold`` is in that unit. Neighbour searches are exact, by blocked matrix products on ``device``
(:mod:`medfab.evaluation.neighbours`; the tests check them against sklearn's ``NearestNeighbors``). Every figure
comes from four passes over distance matrices, :func:`audit_neighbours`: synthetic x train (read in both
directions), holdout x train, holdout x synthetic and the upper half of train x train (3.5 products, 5 before).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfab.errors import MedfabError

PERCENTILE = 5.0     # holdout percentile that defines a near-copy
MIN_HOLDOUT = 10


def _images(s, name: str, min_n: int = 2):
    """(array, keys or None) from a TensorSet or an array."""
    from medfab.evaluation.diversity import check_images

    return check_images(getattr(s, "x", s), name, min_n=min_n), getattr(s, "keys", None)


def pixel_vectors(x: np.ndarray, pixel_size: int | None) -> np.ndarray:
    """(N, P) float32 rows scaled by 1/sqrt(P), so Euclidean distance = RMS pixel difference."""
    import torch
    import torch.nn.functional as F

    if pixel_size is not None and max(x.shape[2:]) > pixel_size:
        t = torch.as_tensor(x)
        pool = F.adaptive_avg_pool2d if t.ndim == 4 else F.adaptive_avg_pool3d
        x = pool(t, pixel_size).numpy()                  # area average: (N, C, s, s[, s])
    v = x.reshape(len(x), -1).astype(np.float32)
    return v / np.float32(np.sqrt(v.shape[1]))


def _stats(d: np.ndarray) -> dict:
    return {"mean": float(d.mean()), "median": float(np.median(d)), "p5": float(np.percentile(d, 5)),
            "min": float(d.min())}


def _ratio(d: np.ndarray) -> np.ndarray:
    """First / second neighbour distance; 0 where both are 0 (an exact copy of a duplicated training image)."""
    return np.divide(d[:, 0], d[:, 1], out=np.zeros(len(d)), where=d[:, 1] > 0)


@dataclass
class AuditNeighbours:
    """The neighbour distances (float64) and indices that every figure of :func:`audit_space` is read from."""

    d_s: np.ndarray    # (M, 2) synthetic -> its two nearest training rows
    i_s: np.ndarray    # (M, 2)
    d_h: np.ndarray    # (H, 2) holdout -> its two nearest training rows
    i_h: np.ndarray    # (H, 2)
    d_t: np.ndarray    # (N,) training row -> its nearest other training row (leave-one-out)
    d_ts: np.ndarray   # (N,) training row -> nearest synthetic row
    d_hs: np.ndarray   # (H,) holdout row -> nearest synthetic row


def audit_neighbours(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, device="cpu") -> AuditNeighbours:
    """Every distance matrix computed once: synth x train gives both directions (synthetic -> train for copies and
    authenticity, train -> synthetic for membership), train x train is symmetric (half computed). Long rows (pixels)
    are pruned exactly by a principal-axes lower bound fitted on ``train`` (:mod:`~medfab.evaluation.neighbours_pruned`)."""
    from medfab.evaluation.neighbours import bound_vectors, cross_kneighbors, self_kneighbors

    zt, zh, zs = bound_vectors(train, holdout, synth, device=device)     # None each: no pruning (short rows)
    (d_s, i_s), (d_ts, _) = cross_kneighbors(synth, train, 2, 1, device=device, z=(zs, zt))
    d_h, i_h = cross_kneighbors(holdout, train, 2, device=device, z=(zh, zt))[0]
    d_hs = cross_kneighbors(holdout, synth, 1, device=device, z=(zh, zs))[0][0][:, 0]
    d_t = self_kneighbors(train, 1, device=device, z=zt)[0][:, 0]
    return AuditNeighbours(d_s, i_s, d_h, i_h, d_t, d_ts[:, 0], d_hs)


def reference_audit_neighbours(train, holdout, synth, *, device="cpu") -> AuditNeighbours:
    """:func:`audit_neighbours` as before issue 8: five separate sklearn searches (tests and bench/)."""
    from medfab.evaluation.neighbours import sklearn_kneighbors as knn

    d_s, i_s = knn(synth, train, 2)
    d_h, i_h = knn(holdout, train, 2)
    return AuditNeighbours(d_s, i_s, d_h, i_h, knn(train, train, 1, exclude_self=True)[0][:, 0],
                           knn(train, synth, 1)[0][:, 0], knn(holdout, synth, 1)[0][:, 0])


def audit_space(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, *, threshold: float | None = None,
                top_k: int = 16, train_keys=None, device="cpu") -> dict:
    """All figures for one representation: rows of ``train`` (N, F), ``holdout`` (H, F), ``synth`` (M, F)."""
    from sklearn.metrics import roc_auc_score

    nb = audit_neighbours(train, holdout, synth, device=device)
    d_s, i_s, d_h, i_h, d_t = nb.d_s, nb.i_s, nb.d_h, nb.i_h, nb.d_t
    source = "explicit"
    if threshold is None:
        threshold, source = float(np.percentile(d_h[:, 0], PERCENTILE)), f"{PERCENTILE:g}th percentile of holdout"
    copies = d_s[:, 0] < threshold
    unauth_s = d_s[:, 0] < d_t[i_s[:, 0]]
    unauth_h = d_h[:, 0] < d_t[i_h[:, 0]]
    member, outsider = -nb.d_ts, -nb.d_hs           # closer to a synthetic image = more suspect
    auc = roc_auc_score(np.r_[np.ones(len(member)), np.zeros(len(outsider))], np.r_[member, outsider])
    order = np.argsort(d_s[:, 0], kind="stable")[:top_k]
    ratio_s = _ratio(d_s)
    pairs = [{"synth_index": int(j), "train_index": int(i_s[j, 0]), "distance": float(d_s[j, 0]),
              "ratio": float(ratio_s[j]), **({"train_key": train_keys[i_s[j, 0]]} if train_keys else {})}
             for j in order]
    return {"copy_threshold": float(threshold), "threshold_source": source,
            "copy_rate": float(copies.mean()), "n_copies": int(copies.sum()),
            "holdout_copy_rate": float((d_h[:, 0] < threshold).mean()),
            "nn_distance": {"synthetic": _stats(d_s[:, 0]), "holdout": _stats(d_h[:, 0])},
            "nn_ratio": {"synthetic": _stats(ratio_s), "holdout": _stats(_ratio(d_h))},
            "authenticity": {"synthetic": float(1 - unauth_s.mean()), "holdout": float(1 - unauth_h.mean()),
                             "difference": float(unauth_h.mean() - unauth_s.mean())},   # synthetic - holdout
            "membership_auc": float(auc), "closest_pairs": pairs,
            "synthetic_nn_distances": [float(v) for v in d_s[:, 0]],
            "holdout_nn_distances": [float(v) for v in d_h[:, 0]]}


def _features(f, name: str, n: int, dim: int | None) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or len(f) != n or (dim is not None and f.shape[1] != dim) or not np.isfinite(f).all():
        raise MedfabError(f"{name} has shape {f.shape} (or non-finite values); expected ({n}, F), one finite row "
                          "per image", "extract all three feature sets with the same network, in image order")
    return f


def privacy_audit(real_train, real_holdout, synth, *, features_train=None, features_holdout=None,
                  features_synth=None, copy_threshold: float | None = None,
                  feature_copy_threshold: float | None = None, pixel_size: int | None = 64,
                  top_k: int = 16, device: str = "cpu") -> dict:
    """Memorisation audit of ``synth`` against ``real_train``, with ``real_holdout`` as the baseline.

    Inputs are TensorSets (or image arrays (N, 1, H, W) in [-1, 1]); features are optional (N, F) arrays in the
    same order. Returns ``copy_rate`` and ``membership_auc`` (pixel space, the headline), ``pixel`` and, with
    features, ``features``: the full figures of :func:`audit_space` (thresholds, NN distance and ratio
    statistics, authenticity, the ``top_k`` closest pairs for a gallery, the per-image NN distances).
    ``device``: where the neighbour searches run ("cpu", "cuda", "auto", ...).
    """
    from medfab.device import resolve_device

    device = resolve_device(str(device))
    xt, keys = _images(real_train, "the real training images")
    xh, _ = _images(real_holdout, "the real holdout images", MIN_HOLDOUT)   # enough for a 5th percentile
    xs, _ = _images(synth, "the synthetic images")
    if not xt.shape[1:] == xh.shape[1:] == xs.shape[1:]:
        raise MedfabError(f"image shapes differ: train {xt.shape[1:]}, holdout {xh.shape[1:]}, synthetic "
                          f"{xs.shape[1:]}", "load every set at the same --size")
    pix = audit_space(pixel_vectors(xt, pixel_size), pixel_vectors(xh, pixel_size), pixel_vectors(xs, pixel_size),
                      threshold=copy_threshold, top_k=top_k, train_keys=keys, device=device)
    out = {"n_train": len(xt), "n_holdout": len(xh), "n_synth": len(xs), "pixel_size": pixel_size,
           "pixel_distance": "rms", "copy_rate": pix["copy_rate"], "membership_auc": pix["membership_auc"],
           "pixel": pix}
    given = [f is not None for f in (features_train, features_holdout, features_synth)]
    if any(given) and not all(given):
        raise MedfabError("features were given for some sets only",
                          "pass features_train, features_holdout and features_synth together, or none")
    if all(given):
        ft = _features(features_train, "features_train", len(xt), None)
        fh = _features(features_holdout, "features_holdout", len(xh), ft.shape[1])
        fs = _features(features_synth, "features_synth", len(xs), ft.shape[1])
        out["features"] = audit_space(ft, fh, fs, threshold=feature_copy_threshold, top_k=top_k, train_keys=keys,
                                      device=device)
    return out
