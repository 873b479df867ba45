"""The memorisation guard flags copies of training images and passes new images."""

from __future__ import annotations

import numpy as np

from medfab.training.logging import class_grid
from medfab.training.memorisation import NearCopyGuard, grid_images


def _blobs(n: int, seed: int) -> np.ndarray:
    """(n, 1, 32, 32) smooth random images in [-1, 1], all different."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] / 31
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.1, 0.4)]
        out.append(np.tanh(4 * (r - np.hypot(xx - cx, yy - cy))) + 0.1 * np.sin(rng.uniform(3, 9) * xx))
    return np.clip(np.stack(out)[:, None], -1, 1).astype(np.float32)


def test_copies_are_flagged_and_new_images_are_not():
    x, y = _blobs(60, 0), np.repeat([0, 1], 30)
    guard = NearCopyGuard.fit(x, y, 2, percentile=1.0, pixel_size=16)
    copies = guard.check(x[[0, 5, 40]], y[[0, 5, 40]])
    assert copies["nearcopy_frac"] == 1.0 and copies["nn_dist_median"] < 1e-3
    new = guard.check(_blobs(20, 1), np.repeat([0, 1], 10))
    assert new["nearcopy_frac"] <= 0.1 and new["nn_dist_median"] > guard.threshold
    # a copy of an image of the OTHER class is not a copy within its class
    swapped = guard.check(x[[0]], np.array([1]))
    assert swapped["nn_dist_median"] > 0


def test_duplicates_in_the_training_set_do_not_collapse_the_threshold():
    """Br35H repeats slices: a duplicate's leave-one-out distance is 0, which used to make the threshold ~0.001."""
    x, y = _blobs(60, 0), np.repeat([0, 1], 30)
    plain = NearCopyGuard.fit(x, y, 2, percentile=1.0, pixel_size=16)
    dup = np.concatenate([x, x[:20]]), np.concatenate([y, y[:20]])         # a third of the images twice
    guarded = NearCopyGuard.fit(*dup, 2, percentile=1.0, pixel_size=16)
    assert plain.threshold > 0.05 and abs(guarded.threshold - plain.threshold) < 0.2 * plain.threshold
    assert guarded.check(x[[0, 5, 40]], y[[0, 5, 40]])["nearcopy_frac"] == 1.0      # copies are still copies
    # every image duplicated, nothing else: the floor, not 0 or a crash
    only = NearCopyGuard.fit(np.concatenate([x[:2], x[:2]]), np.array([0, 1, 0, 1]), 2, pixel_size=16)
    assert only.threshold > 0


class _Copier:
    """A 'model' whose generate returns training images of the asked class (a perfect memoriser)."""

    def __init__(self, x, y):
        self.x, self.y, self.training = x, y, False

    def train(self, mode=True):
        self.training = mode

    def eval(self):
        self.train(False)

    def generate(self, y, generator=None):
        import torch

        rows = [np.flatnonzero(self.y == int(k))[i % 3] for i, k in enumerate(y)]
        return torch.from_numpy(self.x[rows])


def test_grid_round_trip_finds_a_copying_model():
    import torch

    x, y = _blobs(40, 2), np.repeat([0, 1], 20)
    grid = class_grid(_Copier(x, y), 2, 4, seed=0, device=torch.device("cpu"))
    images, labels = grid_images(grid, 2, 4)
    assert images.shape == (8, 1, 32, 32) and labels.tolist() == [0] * 4 + [1] * 4
    guard = NearCopyGuard.fit(x, y, 2)
    assert guard.check_grid(grid, 4)["nearcopy_frac"] == 1.0


def test_training_logs_the_near_copy_fraction_at_each_periodic_grid(tmp_path):
    import json

    import torch
    from tiny_model import TinyConfig, TinyGAN, tiny_data

    from medfab.training.loop import fit

    torch.manual_seed(0)
    data = tiny_data(counts=(3, 2), size=16)
    model = TinyGAN(TinyConfig(name="tiny", image_size=16, num_classes=2, batch_size=4))
    fit(model, data, out=tmp_path, kimg=0.016, grid_every=0.008, grid_per_class=2, progress=False, config={})
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in rows if "nearcopy_frac" in r]
    assert len(checks) == 2 and [r["step"] for r in checks] == [2, 4]
    assert all(0 <= r["nearcopy_frac"] <= 1 and r["nearcopy_threshold"] >= 0 for r in checks)
