"""Four ways to turn reconstruction errors into a normal / abnormal label (abnormal = 1 = positive).

Each detector follows the scikit-learn habit: ``__init__`` stores settings, ``fit(val)`` learns from the
validation errors (normal images, plus abnormal ones when the data has them) and returns ``self``,
``predict(test)`` returns ``(labels (N,) int64, scores (N,) float64)`` where a larger score means "more
abnormal". ``state()`` / ``from_state()`` store what was learnt as JSON in the run folder.

- :class:`GIAEM`: score = sum over pixels of |x - x_hat|; abnormal if score >= threshold.
- :class:`SingleKMeans`: 2-means of ONE image's pixel errors; score = mass (sum of errors) of the
  high-error cluster (or its pixel fraction, ``score="size"``); abnormal if score >= threshold.
- :class:`DBSCANDetector`: DBSCAN over standardised error features of the normal validation images; a test
  image is abnormal unless it falls (within eps of a core point) in the cluster that holds most of the
  normal validation images (noise, label -1, is abnormal) on the high-error side (mean standardised
  feature > 0). Score = distance to that cluster's nearest core point, negative on the low-error side.
- :class:`GlobalKMeans`: 2-means over the test images' standardised error features; the cluster whose
  centre has the larger mean feature (more error) is abnormal. Score = d(normal centre) - d(abnormal centre).

Threshold rule (GIAEM, single-example KMeans): if the validation split holds both normal and abnormal images,
the threshold maximises Youden's J = TPR - FPR on it; otherwise it is the 95th percentile of the normal
validation scores (about 5 % false positives on normal data by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfab.errors import MedfabError

MIN_GLOBAL_IMAGES = 2          # 2-means needs at least one image per cluster


@dataclass
class ErrorSet:
    """Reconstruction errors of a set of images: what every detector reads."""

    maps: np.ndarray                  # (N, H, W[, D]) absolute error maps
    features: np.ndarray              # (N, 5) standardised error features (see medfab.anomaly.recon)
    abnormal: np.ndarray | None = None  # (N,) bool ground truth where known (validation / test)


def choose_threshold(scores: np.ndarray, abnormal: np.ndarray, percentile: float = 95.0) -> tuple[float, str]:
    """Threshold on ``scores`` (abnormal if score >= threshold) and the rule that chose it."""
    from sklearn.metrics import roc_curve

    scores, abnormal = np.asarray(scores, np.float64), np.asarray(abnormal, bool)
    if abnormal.any() and (~abnormal).any():
        fpr, tpr, thr = roc_curve(abnormal, scores)
        i = int(np.argmax(tpr - fpr))
        # thr[0] is +inf (nothing flagged); J is 0 there, so argmax only picks it when no threshold helps.
        return float(thr[i]) if np.isfinite(thr[i]) else float(scores.max()) + 1.0, "youden"
    return float(np.percentile(scores[~abnormal], percentile)), f"p{percentile:g}_normal"


def _val_labels(val: ErrorSet) -> np.ndarray:
    return np.zeros(len(val.maps), bool) if val.abnormal is None else np.asarray(val.abnormal, bool)


class _Thresholded:
    """A per-image score compared with a threshold learnt on validation data."""

    name = ""

    def __init__(self, percentile: float = 95.0):
        self.percentile = percentile

    def score(self, es: ErrorSet) -> np.ndarray:
        raise NotImplementedError

    def fit(self, val: ErrorSet) -> _Thresholded:
        self.threshold_, self.rule_ = choose_threshold(self.score(val), _val_labels(val), self.percentile)
        return self

    def predict(self, test: ErrorSet) -> tuple[np.ndarray, np.ndarray]:
        s = self.score(test)
        return (s >= self.threshold_).astype(np.int64), s

    def state(self) -> dict:
        return {"percentile": self.percentile, "threshold": self.threshold_, "rule": self.rule_}

    def load(self, d: dict) -> _Thresholded:
        self.percentile, self.threshold_, self.rule_ = d["percentile"], d["threshold"], d["rule"]
        return self


class GIAEM(_Thresholded):
    """Global image absolute error magnitude: sum over pixels of |x - x_hat|."""

    name = "GIAEM"

    def score(self, es: ErrorSet) -> np.ndarray:
        return es.maps.reshape(len(es.maps), -1).sum(1, dtype=np.float64)


def two_means_1d(e: np.ndarray, *, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact 2-means of each row of ``e`` (N, P): (lowest value of the high cluster (N,), its size (N,)).

    In one dimension the optimal 2-means partition is a cut of the sorted values, so scanning all P - 1
    cuts with cumulative sums gives the global optimum (Lloyd's algorithm can stop in a local one), with no
    random initialisation.
    """
    e = np.asarray(e, np.float64)
    N, P = e.shape
    chunk = chunk or max(1, 2**20 // P)            # ~8 MB per float64 work array, whatever the image size
    cut_value, high_size = np.empty(N), np.empty(N, np.int64)
    k = np.arange(1, P, dtype=np.float64)                             # size of the low cluster at each cut
    for i in range(0, N, chunk):
        s = np.sort(e[i:i + chunk], axis=1)                            # (n, P)
        c1, c2 = np.cumsum(s, 1), np.cumsum(s * s, 1)
        t1, t2 = c1[:, -1:], c2[:, -1:]
        lo1, lo2 = c1[:, :-1], c2[:, :-1]                              # (n, P-1): sums of the low cluster
        sse = (lo2 - lo1**2 / k) + ((t2 - lo2) - (t1 - lo1) ** 2 / (P - k))
        j = np.argmin(sse, axis=1)                                     # low cluster = s[:, :j+1]
        cut_value[i:i + len(s)] = s[np.arange(len(s)), j + 1]
        high_size[i:i + len(s)] = P - (j + 1)
    return cut_value, high_size


class SingleKMeans(_Thresholded):
    """2-means inside one image's error map; the high-error cluster's mass (or size) is the score."""

    name = "single-example KMeans"

    def __init__(self, percentile: float = 95.0, score: str = "mass"):
        if score not in ("mass", "size"):
            raise MedfabError(f"unknown single-example KMeans score '{score}'", "use 'mass' or 'size'")
        super().__init__(percentile)
        self.score_kind = score

    def score(self, es: ErrorSet) -> np.ndarray:
        e = es.maps.reshape(len(es.maps), -1).astype(np.float64)       # (N, P)
        cut, size = two_means_1d(e)
        if self.score_kind == "size":
            return size / e.shape[1]
        # Mass of the cluster = sum of the errors at or above the cut (ties at the cut value included).
        return np.where(e >= cut[:, None], e, 0.0).sum(1)

    def state(self) -> dict:
        return {**super().state(), "score": self.score_kind}

    def load(self, d: dict) -> SingleKMeans:
        super().load(d)
        self.score_kind = d.get("score", "mass")
        return self


def k_distance_elbow(z: np.ndarray, k: int) -> float:
    """eps from the k-distance curve (Ester et al. 1996): each point's distance to its k-th neighbour,
    sorted; the elbow is the point farthest from the chord joining the curve's ends (axes scaled to [0, 1]).
    """
    from sklearn.neighbors import NearestNeighbors

    d = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)[0][:, k]   # column 0 is the point itself
    d = np.sort(d)
    if d[-1] - d[0] < 1e-12:
        return float(max(d[-1], 1e-6))
    x = np.linspace(0.0, 1.0, len(d))
    y = (d - d[0]) / (d[-1] - d[0])
    i = int(np.argmax(x - y))        # distance to the chord y = x, for a convex (rising) curve
    return float(max(d[i], 1e-6))


class DBSCANDetector:
    """DBSCAN of normal validation error features; a test image outside their main cluster is abnormal.

    DBSCAN (Ester et al. 1996) runs once, at fit time, on the normal validation images. A test image is
    then assigned the standard out-of-sample way: it joins the cluster of its nearest core point if that
    point lies within ``eps`` (it would be a border point), else it is noise (-1). So one test image's
    label does not depend on the other test images, and abnormal test images cannot chain into the normal
    cluster through each other.
    """

    name = "DBSCAN"

    def __init__(self, eps: float | None = None, min_samples: int = 5):
        self.eps, self.min_samples = eps, min_samples

    def fit(self, val: ErrorSet) -> DBSCANDetector:
        from sklearn.cluster import DBSCAN

        z = val.features[~_val_labels(val)]
        need = self.min_samples + 1
        if len(z) < need:
            raise MedfabError(
                f"DBSCAN needs at least {need} normal validation images (min_samples + 1), got {len(z)}",
                "use more normal images (or a larger validation fraction), or lower min_samples")
        # sklearn counts the point itself in min_samples: a core point has min_samples - 1 other neighbours.
        k = max(self.min_samples - 1, 1)
        self.eps_ = float(self.eps) if self.eps is not None else k_distance_elbow(z, k)
        db = DBSCAN(eps=self.eps_, min_samples=self.min_samples).fit(z)
        core_lab = db.labels_[db.core_sample_indices_]
        if len(core_lab) == 0:
            raise MedfabError(f"DBSCAN found no dense region among {len(z)} normal validation images "
                              f"(eps={self.eps_:.3g})", "leave eps unset (k-distance elbow) or raise it")
        self.core_ = db.components_                                   # (K, 5) core points
        self.core_in_main_ = core_lab == np.bincount(db.labels_[db.labels_ >= 0]).argmax()   # (K,)
        return self

    def predict(self, test: ErrorSet) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.neighbors import NearestNeighbors

        z = test.features
        d_any, i_any = NearestNeighbors(n_neighbors=1).fit(self.core_).kneighbors(z)
        inside = (d_any[:, 0] <= self.eps_) & self.core_in_main_[i_any[:, 0]]
        # An outlier with LESS error than normal images (mean standardised feature < 0) reconstructs
        # better than normal anatomy: not a lesion. Only outliers on the high-error side are abnormal.
        high = z.mean(1) > 0
        dist = NearestNeighbors(n_neighbors=1).fit(self.core_[self.core_in_main_]).kneighbors(z)[0][:, 0]
        return (~inside & high).astype(np.int64), np.where(high, dist, -dist)

    def state(self) -> dict:
        return {"eps": self.eps_, "eps_given": self.eps, "min_samples": self.min_samples,
                "core": self.core_.tolist(), "core_in_main": self.core_in_main_.tolist()}

    def load(self, d: dict) -> DBSCANDetector:
        self.eps, self.eps_, self.min_samples = d["eps_given"], d["eps"], d["min_samples"]
        self.core_ = np.asarray(d["core"], np.float64)
        self.core_in_main_ = np.asarray(d["core_in_main"], bool)
        return self


class GlobalKMeans:
    """2-means over all test images' error features; the higher-error centre is the abnormal cluster."""

    name = "global KMeans"

    def __init__(self, seed: int = 0, n_init: int = 10):
        self.seed, self.n_init = seed, n_init

    def fit(self, val: ErrorSet) -> GlobalKMeans:
        return self                      # learns nothing from validation: it clusters the test set itself

    def predict(self, test: ErrorSet) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import KMeans

        z = test.features
        if len(z) < MIN_GLOBAL_IMAGES:
            raise MedfabError(f"global KMeans needs at least {MIN_GLOBAL_IMAGES} test images, got {len(z)}",
                              "evaluate on a larger test set")
        km = KMeans(n_clusters=2, n_init=self.n_init, random_state=self.seed).fit(z)
        abn = int(np.argmax(km.cluster_centers_.mean(1)))   # every feature grows with the error
        d = km.transform(z)                                  # (N, 2) distances to the centres
        return (km.labels_ == abn).astype(np.int64), d[:, 1 - abn] - d[:, abn]

    def state(self) -> dict:
        return {"seed": self.seed, "n_init": self.n_init}

    def load(self, d: dict) -> GlobalKMeans:
        self.seed, self.n_init = d["seed"], d["n_init"]
        return self


METHODS = {"giaem": GIAEM, "dbscan": DBSCANDetector, "kmeans_single": SingleKMeans, "kmeans_global": GlobalKMeans}


def load_detector(key: str, state: dict):
    return METHODS[key]().load(state)
