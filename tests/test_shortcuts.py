"""Inspect warns when image size (or plain intensity statistics) alone tell the class, as on Br35H."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medfab.data.inspect import inspect_dataset
from medfab.data.shortcuts import check_shortcuts


def _images(root, sizes: dict[str, list[tuple[int, int]]], seed: int = 0):
    rng = np.random.default_rng(seed)
    for c, shapes in sizes.items():
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(shapes):
            a = rng.normal(100, 30, (h, w))
            a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] += 60  # a "head" in the middle, the same in both classes
            Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def test_size_that_tells_the_class_is_a_shortcut(tmp_path):
    rng = np.random.default_rng(1)
    sizes = {"no": [(int(h), int(w)) for h, w in rng.integers(40, 56, (20, 2))],
             "yes": [(int(h), int(w)) for h, w in rng.integers(64, 80, (20, 2))]}
    r = inspect_dataset(_images(tmp_path / "d", sizes), progress=False)
    acq = {g: (a, c) for g, a, c in r.shortcuts}["acquisition"]
    assert acq[0] > 0.9 and acq[1] == 0.5
    text = " ".join(p.what + " " + p.todo for p in r.problems)
    assert "shortcut" in text and "crop_head" in text
    assert not any("fine when" in p.todo for p in r.problems)  # sizes differ: no longer called fine


def test_sizes_that_vary_alike_are_no_shortcut(tmp_path):
    rng = np.random.default_rng(2)
    sizes = {c: [(int(h), int(w)) for h, w in rng.integers(40, 80, (20, 2))] for c in ("no", "yes")}
    r = inspect_dataset(_images(tmp_path / "d", sizes), progress=False)
    assert not any("shortcut" in p.what for p in r.problems), r.problems
    assert all(a < 0.75 for _, a, _ in r.shortcuts)


def test_too_few_images_say_nothing():
    assert check_shortcuts([(8, 8)] * 6, ["L"] * 6, [None] * 6, ["a"] * 3 + ["b"] * 3) == []


def test_the_advised_fit_flag_exists_and_is_recorded(tmp_path):
    """The advice names `--fit crop_head`: train accepts it and records it; a bad value is one message, exit 2."""
    import json

    from typer.testing import CliRunner

    from medfab.cli.main import app

    rng = np.random.default_rng(3)
    data = _images(tmp_path / "d", {c: [(int(h), int(w)) for h, w in rng.integers(40, 60, (4, 2))]
                                   for c in ("no", "yes")})
    base = ["train", "--data", str(data), "--model", "vae", "--size", "16", "--set", "width=4"]
    res = CliRunner().invoke(app, base + ["--out", str(tmp_path / "r"), "--kimg", "0.008", "--fit", "crop_head",
                                          "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["preprocess"]["fit"] == "crop_head"
    res = CliRunner().invoke(app, base + ["--out", str(tmp_path / "r2"), "--kimg", "0.008", "--fit", "zoom"])
    assert res.exit_code == 2 and "--fit" in res.output and "Traceback" not in res.output
