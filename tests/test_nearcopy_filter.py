"""Fabrication replaces near-copies of training images (privacy-enhancing sampling), reproducibly."""

from __future__ import annotations

import csv
import importlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from tiny_model import register_tiny, tiny_model

from medfab.data.tensors import load_tensors
from medfab.errors import MedfabError
from medfab.training.loop import fit

fab = importlib.import_module("medfab.sampling.fabricate")     # the package re-exports the function of that name


pytestmark = pytest.mark.usefixtures("tiny_registered")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run whose config records a real folder of training PNGs (8 images per class in [0, 1])."""
    root = tmp_path_factory.mktemp("nearcopy")
    rng = np.random.default_rng(0)
    for c in ("c0", "c1"):
        (root / "data" / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(128, 256, (8, 8), dtype=np.uint8)).save(root / "data" / c / f"{i}.png")
    ts = load_tensors(root / "data", size=8, progress=False)
    config = {"data": {"path": str(root / "data"), "split": None, "size": 8}, "preprocess": ts.preprocess}
    with pytest.MonkeyPatch.context() as mp:
        register_tiny(mp)
        fit(tiny_model(ts), ts, out=root / "run", kimg=0.02, progress=False, config=config)
    return {"root": root, "run": root / "run", "train": ts}


def _copying_generator(train, copy_every: int):
    """generate_batch stand-in: every ``copy_every``-th seed returns a training image of its class exactly; the
    others return images far from every training image ([-1, -0.5] against training images in [0, 1])."""

    def generate(model, class_index, seeds, **sampler):
        own = train.x[train.y == class_index]
        out = []
        for s in seeds:
            if s % copy_every == 0:
                out.append(own[s % len(own)])
            else:
                out.append(np.random.default_rng(s).uniform(-1, -0.5, own.shape[1:]).astype(np.float32))
        return np.stack(out)

    return generate


def _rows(out):
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_near_copies_are_replaced_by_the_next_free_seeds(run, tmp_path, monkeypatch):
    monkeypatch.setattr(fab, "generate_batch", _copying_generator(run["train"], copy_every=3))
    out = fab.fabricate(run["run"], tmp_path / "s", n_per_class=6, seed=0, progress=False, batch_size=4)
    rows = _rows(out)
    seeds = {c: [int(r["seed"]) for r in rows if r["class"] == c] for c in ("c0", "c1")}
    # c0 planned 0..5 (0 and 3 copy), c1 planned 6..11 (6 and 9 copy); replacements from index 12 on, in order:
    # c0 takes 12 (a copy: 12 % 3 == 0) then 13, 14; c1 takes 15 (a copy), 16, 17.
    assert seeds["c0"] == [1, 2, 4, 5, 13, 14] and seeds["c1"] == [7, 8, 10, 11, 16, 17]
    for r in rows:                                    # nothing written is a copy of a training image
        assert np.asarray(Image.open(out / r["file"])).max() < 128
    card = json.loads((out / "model_card.json").read_text())["near_copy_filter"]
    assert card["mode"] == "on" and card["rejected"] == {"c0": 3, "c1": 3} and card["threshold_rms"] > 0

    # the same set, file for file, at another batch size
    again = fab.fabricate(run["run"], tmp_path / "b1", n_per_class=6, seed=0, progress=False, batch_size=1)
    assert [r["file"] for r in _rows(again)] == [r["file"] for r in rows]
    assert all((again / r["file"]).read_bytes() == (out / r["file"]).read_bytes() for r in rows)


def test_off_keeps_the_copies_and_says_so(run, tmp_path, monkeypatch):
    monkeypatch.setattr(fab, "generate_batch", _copying_generator(run["train"], copy_every=3))
    out = fab.fabricate(run["run"], tmp_path / "s", n_per_class=3, progress=False, near_copy_filter="off")
    assert [int(r["seed"]) for r in _rows(out)] == [0, 1, 2, 3, 4, 5]
    assert json.loads((out / "model_card.json").read_text())["near_copy_filter"]["mode"].startswith("off")


def test_a_model_that_only_copies_is_stopped_with_a_clear_error(run, tmp_path, monkeypatch):
    monkeypatch.setattr(fab, "generate_batch", _copying_generator(run["train"], copy_every=1))
    with pytest.raises(MedfabError, match="class c0: .* near-copies") as e:
        fab.fabricate(run["run"], tmp_path / "s", n_per_class=2, progress=False, batch_size=2)
    assert "--near-copy-filter off" in e.value.hint
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".s.tmp-*"))


def test_missing_training_data_turns_auto_off_and_on_into_an_error(run, tmp_path, monkeypatch):
    moved = run["root"] / "moved"
    shutil.move(run["root"] / "data", moved)
    try:
        out = fab.fabricate(run["run"], tmp_path / "a", n_per_class=1, progress=False)
        mode = json.loads((out / "model_card.json").read_text())["near_copy_filter"]["mode"]
        assert mode.startswith("off") and "is not there" in mode
        with pytest.raises(MedfabError, match="--near-copy-filter on: .* not there"):
            fab.fabricate(run["run"], tmp_path / "b", n_per_class=1, progress=False, near_copy_filter="on")
        with pytest.raises(MedfabError, match="unknown near-copy filter mode"):
            fab.fabricate(run["run"], tmp_path / "c", n_per_class=1, progress=False, near_copy_filter="maybe")
    finally:
        shutil.move(moved, run["root"] / "data")
