"""Which images a review shows: seeded, half real and half synthetic, each half stratified by class.

The selection is drawn once, the first time ``medfab review serve`` runs, and stored in the review database;
a restart reads it back, so every reviewer sees the same images whatever happens to the folders later.
Each reviewer sees them in their own seeded order (:func:`reviewer_order`), so order effects average out.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfab.data.readers import read_dataset
from medfab.data.sample import Sample
from medfab.errors import MedfabError
from medfab.review.db import ReviewDB


@dataclass(frozen=True)
class SelectionSummary:
    n: int                         # images selected (half real, half synthetic)
    per_class: dict[str, dict[str, int]]  # {source: {class: count}}
    notes: list[str]
    created: bool                  # False: an existing selection was reused


def _quotas(counts: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over classes as evenly as their sizes allow (a small class gives its rest to others)."""
    quota = {c: 0 for c in counts}
    left = total
    open_ = sorted(c for c in counts if counts[c] > 0)
    while left > 0 and open_:
        share, extra = divmod(left, len(open_))
        for i, c in enumerate(open_):
            quota[c] += share + (1 if i < extra else 0)
        left = 0
        for c in open_:
            if quota[c] > counts[c]:
                left += quota[c] - counts[c]
                quota[c] = counts[c]
        open_ = [c for c in open_ if quota[c] < counts[c]]
    return quota


def _ndim(s: Sample) -> int:
    if s.reader == "image" or s.index is not None:
        return 2
    if s.reader == "nifti":  # from the header: no voxels read at start-up
        from medfab.data.readers.nifti import volume_shape

        return len(volume_shape(s.path))
    from medfab.data.readers import load_array

    return 3 if load_array(s).ndim == 3 else 2


def _draw(samples: list[Sample], k: int, rng: np.random.Generator) -> list[Sample]:
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    quota = _quotas({c: len(v) for c, v in by_class.items()}, k)
    out: list[Sample] = []
    for c in sorted(by_class):
        pool = sorted(by_class[c], key=lambda s: s.key)  # independent of listing order
        idx = rng.choice(len(pool), size=quota[c], replace=False)
        out.extend(pool[int(i)] for i in sorted(idx))
    return out


def _list(folder: Path, what: str):
    if not Path(folder).is_dir():
        raise MedfabError(f"the {what} folder {folder} does not exist or is not a folder",
                          f"give --{what} a folder with one sub-folder per class")
    return read_dataset(folder, volume_mode="3d")


def ensure_selection(db: ReviewDB, real: Path, synthetic: Path, *, n: int, seed: int) -> SelectionSummary:
    """Draw and store the selection unless the review already has one (then ``real``/``synthetic`` are checked
    against the stored folders and the stored selection is kept)."""
    if db.has_items():
        stored = {k: db.get_meta(k) for k in ("real", "synthetic", "n", "seed")}
        notes = []
        if stored["real"] != str(Path(real).resolve()) or stored["synthetic"] != str(Path(synthetic).resolve()):
            notes.append(f"this review was drawn from {stored['real']} and {stored['synthetic']}; "
                         "those images are kept (start a new REVIEW_DIR for other folders)")
        if stored["n"] is not None and int(stored["n"]) != n:
            notes.append(f"kept the stored selection of {stored['n']} images (--n {n} applies to new reviews only)")
        return SelectionSummary(len(db.items()), _per_class(db), notes, created=False)
    if n < 2:
        raise MedfabError(f"--n must be at least 2, not {n}", "e.g. --n 100 (half real, half synthetic)")
    real_ds, synth_ds = _list(real, "real"), _list(synthetic, "synthetic")
    notes = []
    half = n // 2
    if n % 2:
        notes.append(f"--n {n} is odd: {2 * half} images are used so that half are real")
    if min(len(real_ds), len(synth_ds)) < half:
        half = min(len(real_ds), len(synth_ds))
        notes.append(f"only {len(real_ds)} real and {len(synth_ds)} synthetic images: the review shows {2 * half}")
    only = sorted(set(real_ds.classes) ^ set(synth_ds.classes))
    if only:
        notes.append(f"classes found in one folder only: {', '.join(only)}")
    rng = np.random.default_rng(seed)
    rows = []
    for source, ds in (("real", real_ds), ("synthetic", synth_ds)):
        for s in _draw(ds.samples, half, rng):
            rows.append({"public_id": secrets.token_urlsafe(12), "source": source, "label": s.label,
                         "path": str(s.path), "reader": s.reader, "idx": s.index, "axis": s.axis, "ndim": _ndim(s)})
    db.insert_items(rows)
    classes = sorted(set(real_ds.classes) | set(synth_ds.classes))
    for k, v in {"real": str(Path(real).resolve()), "synthetic": str(Path(synthetic).resolve()), "n": str(2 * half),
                 "seed": str(seed), "classes": json.dumps(classes), "created": time.strftime("%Y-%m-%d %H:%M:%S")}.items():
        db.set_meta(k, v)
    return SelectionSummary(2 * half, _per_class(db), notes, created=True)


def _per_class(db: ReviewDB) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"real": {}, "synthetic": {}}
    for it in db.items():
        out[it.source][it.label] = out[it.source].get(it.label, 0) + 1
    return out


def classes(db: ReviewDB) -> list[str]:
    raw = db.get_meta("classes")
    return json.loads(raw) if raw else []


def reviewer_order(item_ids: list[int], seed: int, reviewer_id: int) -> list[int]:
    """This reviewer's fixed, seeded order of the images (same every time, different between reviewers)."""
    rng = np.random.default_rng([seed, reviewer_id])
    return [item_ids[int(i)] for i in rng.permutation(len(item_ids))]
