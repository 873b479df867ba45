"""Exact and near-duplicate detection, shared by ``medfab data inspect`` and ``medfab data split``.

Exact duplicates: the same bytes (:func:`content_hash`; for a slice or ``.npz`` row, the same pixels).

Near duplicates, in two stages that are both vectorised numpy (no Python loop over pairs):

1. candidates: 64-bit perceptual hashes (pHash: signs of the 8x8 lowest DCT frequencies against their
   median, computed on a 32x32 thumbnail) that differ in at most ``MAX_BITS`` = 12 bits. The XOR/popcount
   of all N^2/2 hash pairs runs in blocks (6,400 images: about 1 s).
2. verification: the RMS difference of 16x16 thumbnails after the best affine intensity fit
   (:func:`pair_distance`), in units of the data set's intensity range: [p0.5, p99.5] taken as the median
   over its images, per bit depth (so 8-bit, 16-bit and float files are compared in their own units).
   A pair is a near duplicate if that distance is <= ``MAX_RMSE`` = 0.012 (about 3 grey levels of 255)
   and the fitted contrast factor lies in [0.5, 2].

Why these numbers (measured on the 6,400 Alzheimer MRI JPEGs, 176x208, ``bench/bench_inspect.py``): a JPEG
re-encode at quality 50, Gaussian noise of sd 10/255, a 16-bit re-export and a 0.9x brightness change are
all found (200 of 200), a 0.8x resize 188 of 200 times; shifts, crops and flips are not (they move the
thumbnail by 0.05 or more). Neighbouring slices of one scan typically lie at 0.015-0.03, so a looser
threshold would chain whole scans into one group; at 0.012 the data set has 8 pairs: neighbouring slices
and the known cross-split pair ``test/VeryMildDemented/27 (17).jpg`` ~
``train/VeryMildDemented/verymildDem1757.jpg`` (0.0107). An exhaustive search without the hash stage finds
the same pairs. Blank images (one constant value) are left out: every pair of them would match.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

THUMB = 32  # thumbnail side for the hash; the distance uses its 2x2 means (16x16)
MAX_BITS = 12  # candidate stage: pHash Hamming distance (of 64 bits)
MAX_RMSE = 0.012  # verification: thumbnail RMSE (after an affine intensity fit), in units of the range
MIN_GAIN = 0.5  # ... whose fitted contrast factor lies in [0.5, 2]


def content_hash(path: str | Path) -> str:
    """BLAKE2b-128 of a file's bytes (a folder, e.g. a DICOM series: of its sorted files' names and bytes)."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def array_hash(a: np.ndarray) -> str:
    """BLAKE2b-128 of an array's shape and float32 values (for samples that are not whole files)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    h = hashlib.blake2b(repr(a.shape).encode(), digest_size=16)
    h.update(a.tobytes())
    return h.hexdigest()


def _square_thumb(a: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (size, size): zero-pad to a centred square (keeps the aspect ratio), then box-average."""
    h, w = a.shape
    m = max(h, w)
    canvas = np.zeros((m, m), np.float32)
    canvas[(m - h) // 2 : (m - h) // 2 + h, (m - w) // 2 : (m - w) // 2 + w] = a
    return np.asarray(Image.fromarray(canvas, "F").resize((size, size), Image.BOX), dtype=np.float32)


def thumbnail(a: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Raw-intensity thumbnail: (H, W) -> (size, size); (D, H, W) -> (3, size, size), the three mid-planes.

    Box averaging is linear, so the data-set-wide intensity scaling can be applied afterwards
    (:func:`normalise_thumbnails`) without decoding the images twice.
    """
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        return _square_thumb(a, size)
    if a.ndim == 3:
        d, h, w = a.shape
        return np.stack(
            [
                _square_thumb(a[d // 2], size),
                _square_thumb(a[:, h // 2], size),
                _square_thumb(a[:, :, w // 2], size),
            ]
        )
    raise ValueError(f"thumbnail needs a 2D or 3D array, got shape {a.shape}")


def intensity_range(lows: np.ndarray, highs: np.ndarray) -> tuple[float, float]:
    """The data set's intensity range: medians of the per-image 0.5th and 99.5th percentiles."""
    lo, hi = float(np.median(lows)), float(np.median(highs))
    return lo, (hi if hi > lo else lo + 1.0)


def normalise_thumbnails(thumbs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(N, ...) raw thumbnails -> same shape, scaled so that [lo, hi] maps to [0, 1] (no clipping)."""
    return ((thumbs - lo) / (hi - lo)).astype(np.float32)


def perceptual_hashes(arrays) -> np.ndarray:
    """64-bit pHash of each array: (N,) uint64. 2D arrays of any size, or (N, 32, 32) thumbnails.

    A 3D thumbnail (3, 32, 32) is hashed on its first plane. The hash ignores intensity scale and offset
    (bits compare DCT coefficients with their own median), so it needs no normalisation.
    """
    thumbs = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        a = a[0] if a.ndim == 3 else a
        thumbs.append(a if a.shape == (THUMB, THUMB) else _square_thumb(a, THUMB))
    if not thumbs:
        return np.zeros(0, np.uint64)
    d = dctn(np.stack(thumbs), axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(thumbs), 64)  # DC first
    bits = d > np.median(d[:, 1:], axis=1, keepdims=True)  # DC left out of the median: it tracks brightness
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def hash_pairs(hashes: np.ndarray, max_bits: int = MAX_BITS) -> np.ndarray:
    """All pairs (i < j) whose hashes differ in at most ``max_bits`` bits: (P, 2) int64.

    Exhaustive but vectorised: blocks of (block, N) XOR + popcount, about 128 MB at a time.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    block = max(1, (1 << 24) // max(n, 1))
    found = []
    for s in range(0, n, block):
        hb = hashes[s : s + block]
        dist = np.bitwise_count(hb[:, None] ^ hashes[None, :])  # (b, N) uint8
        i, j = np.nonzero(dist <= max_bits)
        i = i + s
        keep = j > i
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found).astype(np.int64) if found else np.zeros((0, 2), np.int64)


def _box(t: np.ndarray, side: int) -> np.ndarray:
    """(N, [3,] 32, 32) thumbnails -> (N, F) vectors of box means, ``side`` x ``side`` per plane."""
    n, f = len(t), THUMB // side
    return t.reshape(n, -1, side, f, side, f).mean(axis=(3, 5)).reshape(n, -1)


def pair_distance(v: np.ndarray, pairs: np.ndarray, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Intensity-affine RMSE of each pair of vectors: ((P,) distance, (P,) smaller gain).

    distance = max over the two directions of min_{g, c} RMS(v_j - g v_i - c) = sqrt(max(var_i, var_j)
    (1 - rho^2)): a copy whose brightness or contrast was rescaled (another window, 8 -> 16 bit) is at 0.
    gain = min(cov / var_i, cov / var_j): the fitted contrast factor; near 0 means the images are unrelated
    (two almost flat images would otherwise fit each other well).
    """
    dist, gain = [np.zeros(0, np.float32)], [np.zeros(0, np.float32)]
    for c in np.array_split(pairs, max(1, len(pairs) // chunk)) if len(pairs) else []:
        a, b = v[c[:, 0]], v[c[:, 1]]  # (P, F)
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        va, vb, cov = (a * a).mean(axis=1), (b * b).mean(axis=1), (a * b).mean(axis=1)
        tiny = np.finfo(np.float32).tiny
        rho2 = np.clip(cov * cov / np.maximum(va * vb, tiny), 0.0, 1.0)
        dist.append(np.sqrt(np.maximum(va, vb) * (1.0 - rho2)))
        gain.append(np.minimum(cov / np.maximum(va, tiny), cov / np.maximum(vb, tiny)))
    return np.concatenate(dist).astype(np.float32), np.concatenate(gain).astype(np.float32)


def near_duplicate_pairs(
    thumbs: np.ndarray,
    hashes: np.ndarray,
    *,
    max_rmse: float = MAX_RMSE,
    max_bits: int = MAX_BITS,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate pairs: ((P, 2) int64 indices i < j, (P,) float32 distance), closest first.

    ``thumbs``: (N, 32, 32) or (N, 3, 32, 32) thumbnails already scaled by :func:`normalise_thumbnails`.
    ``valid``: (N,) bool, False for images to leave out (unreadable or blank). The distance is
    :func:`pair_distance` of the 16x16 thumbnails; pairs whose fitted gain is below ``MIN_GAIN`` are dropped.
    """
    cand = hash_pairs(hashes, max_bits) if len(thumbs) > 1 else np.zeros((0, 2), np.int64)
    if valid is not None:
        cand = cand[valid[cand[:, 0]] & valid[cand[:, 1]]]
    # Box averaging commutes with the affine fit and never increases an RMS, so the distance of 4x4 and
    # 8x8 means is a lower bound: a cascade prunes almost all candidates with 16, then 64 numbers per plane.
    for side in (4, 8):
        cand = cand[pair_distance(_box(thumbs, side), cand)[0] <= max_rmse]
    d, gain = pair_distance(_box(thumbs, THUMB // 2), cand)
    keep = (d <= max_rmse) & (gain >= MIN_GAIN)
    pairs, d = cand[keep], d[keep]
    order = np.argsort(d, kind="stable")
    return pairs[order], d[order]


def group_labels(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of the pair graph (what union-find computes): (N,) int component id."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    g = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def near_duplicate_groups(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Groups (size >= 2) of indices linked by ``pairs`` directly or through a chain, largest first."""
    labels = group_labels(n, pairs)
    members: dict[int, list[int]] = {}
    for i in np.unique(np.asarray(pairs, dtype=np.int64).ravel()):
        members.setdefault(int(labels[i]), []).append(int(i))
    return sorted((sorted(m) for m in members.values()), key=lambda m: (-len(m), m[0]))
