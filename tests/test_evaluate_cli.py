"""medfab evaluate end to end on tiny synthetic folders, and its input checks."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medfab.cli.main import app
from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError
from medfab.evaluation.baseline import match_counts, split_halves
from medfab.evaluation.run import Context, EvalConfig, check_compatible, run_family


def write_set(root, *, seed, n=24, size=32, classes=("disk", "ring", "square"), noise=0.08):
    """One folder per class of noisy shapes: disks, rings, squares at random places and radii."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
            r = rng.uniform(0.15, 0.28) * size
            d = np.hypot(xx - cx, yy - cy)
            shape = [d < r, (d < r) & (d > r - 3), (abs(xx - cx) < 0.8 * r) & (abs(yy - cy) < 0.8 * r)][k % 3]
            img = np.clip(0.1 + 0.8 * shape + rng.normal(0, noise, shape.shape), 0, 1)
            Image.fromarray((img * 255).astype(np.uint8)).save(root / c / f"{i:03d}.png")
    return root


def _no_nan(path):
    def refuse(name):
        raise ValueError(f"{name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, float):
        yield obj


def test_evaluate_end_to_end_then_report(tmp_path):
    two = ("disk", "ring")
    tr, te, sy = (
        write_set(tmp_path / n, seed=s, classes=two) for n, s in (("train", 0), ("test", 1), ("synth", 2))
    )
    out = tmp_path / "eval"
    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--real-train",
            str(tr),
            "--real-test",
            str(te),
            "--synthetic",
            str(sy),
            "--out",
            str(out),
            "--size",
            "32",
            "--quick",
            "--epochs",
            "1",
            "--families",
            "fidelity,diversity,class,privacy",
            "--features",
            "featurenet",
        ],
    )
    assert r.exit_code == 0, r.output
    res = _no_nan(out / "results.json")
    assert res["schema_version"] == 2 and res["classes"] == ["disk", "ring"]
    assert {n: f["status"] for n, f in res["families"].items()} == dict.fromkeys(
        ["fidelity", "diversity", "class", "privacy"], "ok"
    ), json.dumps(res["families"])[:2000]
    assert all(math.isfinite(v) for v in _numbers(res))
    # the real-vs-real baseline uses equal sample sizes: 12 per class in each half and in the synthetic subset
    assert (
        res["counts"]["real_half_a"]
        == res["counts"]["real_half_b"]
        == res["counts"]["synthetic_matched"]
        == {"disk": 12, "ring": 12}
    )
    fid = res["families"]["fidelity"]["data"]
    assert set(fid["distances"]) == {"featurenet"}
    fd = fid["distances"]["featurenet"]["overall"]["fd"]
    assert fd["synth"]["lo"] <= fd["synth"]["value"] <= fd["synth"]["hi"]
    for fam in res["families"].values():
        for f in fam["figures"]:
            assert (out / f["file"]).is_file(), f
    assert len(res["samples"]) == 2 and all((out / s["file"]).is_file() for s in res["samples"])
    assert any((out / "featurenet").iterdir())
    cfg = json.loads((out / "eval_config.json").read_text())
    assert cfg["quick"] and cfg["seeds"] == 1 and cfg["epochs"] == 1
    r = CliRunner().invoke(app, ["report", str(out), "--out", str(out / "report.html")])
    assert r.exit_code == 0, r.output
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (out / "report.html").read_text())
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_mismatched_class_names_stop_with_a_clear_message(tmp_path):
    tr = write_set(tmp_path / "train", seed=0, n=4)
    te = write_set(tmp_path / "test", seed=1, n=4)
    sy = write_set(tmp_path / "synth", seed=2, n=4, classes=("disk", "Ring", "square"))
    r = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--real-train",
            str(tr),
            "--real-test",
            str(te),
            "--synthetic",
            str(sy),
            "--out",
            str(tmp_path / "eval"),
            "--size",
            "32",
            "--quick",
        ],
    )
    assert r.exit_code == 2
    msg = " ".join(r.output.split())  # rich wraps long lines
    assert "class names differ" in msg and "only in synthetic: ['Ring']" in msg
    assert "missing from synthetic: ['ring']" in msg and "same class folder names" in msg
    assert not (tmp_path / "eval" / "results.json").exists()


def test_bad_options_and_missing_folder(tmp_path):
    tr = write_set(tmp_path / "train", seed=0, n=4, classes=("a", "b"))
    args = ["evaluate", "--real-train", str(tr), "--real-test", str(tr), "--out", str(tmp_path / "e")]
    r = CliRunner().invoke(app, args + ["--synthetic", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
    r = CliRunner().invoke(app, args + ["--synthetic", str(tr), "--families", "fidelity,beauty"])
    assert r.exit_code == 2 and "unknown families ['beauty']" in " ".join(r.output.split())


def _ts(n, size, classes=("a", "b")):
    rng = np.random.default_rng(0)
    y = np.arange(n) % len(classes)
    return TensorSet(
        rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32),
        y,
        list(classes),
        [f"k{i}" for i in range(n)],
    )


def test_check_compatible_sizes_and_class_order():
    with pytest.raises(MedfabError, match=r"real train images are \(1, 32, 32\) but synthetic images are"):
        check_compatible(_ts(8, 32), _ts(8, 32), _ts(8, 48))
    with pytest.raises(MedfabError, match="fewer than 2 images of class"):
        check_compatible(_ts(8, 32), _ts(8, 32), _ts(3, 32))
    # the same names in another order are re-indexed onto the real-train order
    synth = _ts(6, 32, classes=("b", "a"))
    _, _, s2 = check_compatible(_ts(8, 32), _ts(8, 32), synth)
    assert s2.classes == ["a", "b"] and (s2.y == 1 - synth.y).all()


def test_real_halves_are_disjoint_stratified_and_seeded():
    ts = _ts(41, 8, classes=("a", "b", "c"))
    a, b = split_halves(ts, seed=3)
    assert a.counts() == b.counts() == {"a": 7, "b": 7, "c": 6}  # 14, 14, 13 images
    assert not set(a.keys) & set(b.keys)
    assert split_halves(ts, seed=3)[0].keys == a.keys and split_halves(ts, seed=4)[0].keys != a.keys
    m = match_counts(ts, {"a": 2, "b": 100, "c": 0}, seed=0)
    assert m.counts() == {"a": 2, "b": 14, "c": 0}


def test_a_failing_family_is_recorded_and_a_refusal_is_skipped(tmp_path):
    ts = _ts(8, 8)
    cfg = EvalConfig(real_train="r", real_test="t", synthetic="s", out=str(tmp_path))
    ctx = Context(cfg, tmp_path, ts, ts, ts, ts, ts, ts)

    def boom(ctx):
        raise RuntimeError("kaboom")

    def refuse(ctx):
        raise MedfabError("too few images of class a", "fabricate more")

    err = run_family("utility", boom, ctx)
    assert err.status == "error" and "RuntimeError: kaboom" in err.reason
    assert "kaboom" in (tmp_path / "errors.log").read_text()
    skip = run_family("privacy", refuse, ctx)
    assert skip.status == "skipped" and "too few images" in skip.reason
    ok = run_family("x", lambda ctx: ({"v": 1.0}, []), ctx)
    assert ok.status == "ok" and ok.data == {"v": 1.0}
