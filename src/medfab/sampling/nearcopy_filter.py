"""Privacy-enhancing sampling: a fabricated image that is a near-copy of a training image is replaced.

A generator can reproduce the training images of a small class: the VAE trained 15 CPU-minutes on
Alzheimer-4 made 5 % near-copies of the 52 ModerateDemented images (``bench/bench_diffusion_memorisation.py``),
and latent diffusion copied up to 19.6 % of an MRI training set in Dar et al. (2024). Packhäuser et al. (2023,
"Generation of anonymous chest radiographs using latent diffusion models for training thoracic abnormality
classification systems") discard every generated image that a patient-verification network matches to a
training image and draw another. medfab does the same with the training loop's near-copy test
(:class:`medfab.training.memorisation.NearCopyGuard`): an image is a near-copy when its RMS distance at 32 px to
the nearest training image *of its class* is below the 1st percentile of the real training images' own
leave-one-out distances (duplicates within the training set left out).

A rejected image's seed is skipped and the next free seed is drawn (see :func:`medfab.sampling.fabricate`):
seeds past the planned ones, in order, so the set stays a function of the base seed, whatever the batch size.

The test needs the run's training images. They are read again from the path recorded in the run's
``config.json`` with the run's preprocessing; nothing of them is stored in the run folder or the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfab.errors import MedfabError

MODES = ("auto", "on", "off")


@dataclass
class NearCopyFilter:
    """The calibrated near-copy test for each class of a run's training data."""

    guard: Any                                   # medfab.training.memorisation.NearCopyGuard
    index: dict[str, int]                        # class name -> the guard's reference index
    rejected: dict[str, int] = field(default_factory=dict)

    def keep(self, cls: str, images: np.ndarray) -> np.ndarray:
        """Boolean mask over ``images`` (B, C, ...) in [-1, 1] of class ``cls``: True = not a near-copy."""
        d = self.guard.distances(images, np.full(len(images), self.index[cls])).numpy()
        keep = d >= self.guard.threshold
        self.rejected[cls] = self.rejected.get(cls, 0) + int((~keep).sum())
        return keep

    def record(self) -> dict[str, Any]:
        return {"mode": "on", "threshold_rms": self.guard.threshold, "pixel_size": self.guard.pixel_size,
                "rejected": dict(self.rejected),
                "rule": "RMS distance to the nearest training image of the class below the 1st percentile of "
                        "the training images' leave-one-out distances: replaced by the next free seed"}


def _training_images(config: dict[str, Any], progress: bool):
    """The run's training tensors read again from the recorded path, or a sentence saying why they cannot be."""
    data = config.get("data") or {}
    path = data.get("path")
    if not path:
        return None, "the run does not record where its training data is"
    root = Path(path)
    if not root.is_dir():
        return None, f"the run's training data {root} is not there"
    from medfab.data.volumes import training_tensors

    size = int(data.get("size") or config.get("model", {}).get("image_size", 64))
    dims = int(config.get("model", {}).get("spatial_dims", 2))
    try:
        _, ts = training_tensors(root, size=size, split=data.get("split"), preprocess=config.get("preprocess"),
                                 dims=dims, progress=progress)
    except MedfabError as e:
        return None, f"the run's training data {root} cannot be read again ({e.message})"
    if data.get("counts") and ts.counts() != dict(data["counts"]):
        return None, (f"the training data at {root} changed since training (counts {ts.counts()}, the run "
                      f"recorded {dict(data['counts'])})")
    return ts, ""


def build_filter(config: dict[str, Any], mode: str, progress: bool = False) -> tuple[NearCopyFilter | None, str]:
    """The filter for a run (its root ``config``), or None with the reason it is off.

    ``mode``: "on" (an error when the training data cannot be read), "off", or "auto" (on when it can be).
    """
    if mode not in MODES:
        raise MedfabError(f"unknown near-copy filter mode '{mode}'", "use auto, on or off")
    if mode == "off":
        return None, "off (--near-copy-filter off)"
    ts, why = _training_images(config, progress)
    if ts is None:
        if mode == "on":
            raise MedfabError(f"--near-copy-filter on: {why}",
                              "restore the training data at its recorded path, or sample with "
                              "--near-copy-filter off (then near-copies are not replaced)")
        return None, f"off: {why}"
    from medfab.training.memorisation import NearCopyGuard

    guard = NearCopyGuard.fit(np.asarray(ts.x), np.asarray(ts.y), len(ts.classes))
    return NearCopyFilter(guard, {c: i for i, c in enumerate(ts.classes)}), "on"
