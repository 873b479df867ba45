"""medfab data split: no leakage, stratified, deterministic, atomic, refuses to overwrite."""

import csv
import os
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from test_inspect import blob, jpeg_noisy_copy

from medfab.data import split as split_mod
from medfab.data.split import SplitConfig, assign_splits, split_dataset
from medfab.errors import MedfabError


def make_flat(root, n_a: int = 30, n_b: int = 12):
    """root/a (n_a images), root/b (n_b), with 3 near-duplicate pairs and 1 exact copy mixed in."""
    near, seed = [], 0
    for c, n in (("a", n_a), ("b", n_b)):
        (root / c).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(blob(seed)).save(root / c / f"{c}{k}.png")
            seed += 1
    for c, k in (("a", 0), ("a", 5), ("b", 2)):
        src = np.asarray(Image.open(root / c / f"{c}{k}.png"))
        Image.fromarray(jpeg_noisy_copy(src, k)).save(root / c / f"{c}{k}_reexport.jpg", quality=90)
        near.append((f"{c}/{c}{k}.png", f"{c}/{c}{k}_reexport.jpg"))
    shutil.copy(root / "a/a7.png", root / "a/a7_copy.png")
    near.append(("a/a7.png", "a/a7_copy.png"))
    return near


def read_rows(out):
    with open(out / "split.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_split_keeps_duplicates_together_and_stratifies(tmp_path):
    near = make_flat(tmp_path / "d")
    summary = split_dataset(
        tmp_path / "d", tmp_path / "out", SplitConfig(test=0.25, val=0.2, seed=0), progress=False
    )
    rows = read_rows(tmp_path / "out")
    where = {r["source"]: r["split"] for r in rows}
    group = {r["source"]: r["group"] for r in rows}
    assert len(rows) == 46 and set(where.values()) == {"train", "val", "test"}
    for a, b in near:  # no duplicate pair straddles splits (seed 0 splits 3 of 4 pairs if ungrouped)
        assert where[a] == where[b] and group[a] == group[b]
    n = Counter((r["split"], r["class"]) for r in rows)
    for sp, frac in (("test", 0.25), ("val", 0.2)):
        size = n[(sp, "a")] + n[(sp, "b")]
        assert abs(size / 46 - frac) <= 0.08
        assert abs(n[(sp, "a")] / size - 34 / 46) <= 0.15  # class a is 34 of 46 overall
    for r in rows:  # a symlink per file, pointing at the original
        p = tmp_path / "out" / r["file"]
        assert p.is_symlink() and p.resolve() == (tmp_path / "d" / r["source"]).resolve()
        assert r["file"].startswith(f"{r['split']}/{r['class']}/")
    assert summary["counts"]["test"]["a"] == n[("test", "a")]
    assert (tmp_path / "out/split.json").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_split_respects_subject_ids(tmp_path):
    (tmp_path / "d").mkdir()
    lines = ["file,label,subject"]
    for k in range(40):
        Image.fromarray(blob(500 + k)).save(tmp_path / "d" / f"s{k}.png")
        lines.append(f"s{k}.png,{'yes' if k % 3 else 'no'},subj{k // 4}")  # 10 subjects x 4 slices
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    split_dataset(
        tmp_path / "d",
        tmp_path / "out",
        SplitConfig(test=0.3, val=0.0, seed=0),
        progress=False,
        labels_csv=tmp_path / "labels.csv",
    )
    rows = read_rows(tmp_path / "out")
    by_subject: dict[int, set] = {}
    for r in rows:
        by_subject.setdefault(int(r["source"][1:-4]) // 4, set()).add(r["split"])
    assert all(len(s) == 1 for s in by_subject.values())
    assert {r["split"] for r in rows} == {"train", "test"}


def test_split_is_deterministic_in_seed_and_copies(tmp_path):
    make_flat(tmp_path / "d")
    for name, seed, link in (("o1", 3, "symlink"), ("o2", 3, "copy"), ("o3", 4, "symlink")):
        split_dataset(tmp_path / "d", tmp_path / name, SplitConfig(seed=seed, link=link), progress=False)
    r1, r2, r3 = (read_rows(tmp_path / n) for n in ("o1", "o2", "o3"))
    assert r1 == r2 and r1 != r3
    copied = tmp_path / "o2" / r2[0]["file"]
    assert copied.is_file() and not copied.is_symlink()


def test_split_refuses_non_empty_out_and_cleans_up_after_failure(tmp_path, monkeypatch):
    make_flat(tmp_path / "d", 10, 10)
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("keep me")
    with pytest.raises(MedfabError, match="not empty"):
        split_dataset(tmp_path / "d", tmp_path / "full", progress=False)
    with pytest.raises(MedfabError, match="inside the data folder"):
        split_dataset(tmp_path / "d", tmp_path / "d/out", progress=False)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(split_mod, "_write", boom)
    with pytest.raises(OSError):
        split_dataset(tmp_path / "d", tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.partial-*"))
    (tmp_path / ".new.partial-999999999").mkdir()  # left by a killed run (no such process)
    monkeypatch.undo()
    (tmp_path / "empty").mkdir()
    split_dataset(tmp_path / "d", tmp_path / "empty", progress=False)  # an empty --out is fine
    split_dataset(tmp_path / "d", tmp_path / "new", progress=False)
    assert (tmp_path / "new/split.csv").exists() and not list(tmp_path.glob(".new.partial-*"))


def test_assign_splits_groups_and_proportions():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(300), rng.integers(1, 6, size=300))  # (N,) 300 groups of 1-5 samples
    y = (rng.random(300) < 0.2).astype(int)[groups]  # one class per group, 20 % class 1
    where = assign_splits(y, groups, test=0.2, val=0.1, seed=7)
    for g in range(300):
        assert len(set(where[groups == g])) == 1
    for sp, frac in (("test", 0.2), ("val", 0.1), ("train", 0.7)):
        m = where == sp
        assert abs(m.mean() - frac) < 0.03 and abs(y[m].mean() - y.mean()) < 0.05
    assert (assign_splits(y, groups, test=0.2, val=0.1, seed=7) == where).all()


def test_config_and_cli_errors(tmp_path):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    with pytest.raises(ValueError):
        SplitConfig(test=0.6, val=0.4)
    with pytest.raises(ValueError):
        SplitConfig(tets=0.2)
    make_flat(tmp_path / "d", 8, 8)
    res = CliRunner().invoke(
        app, ["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--test", "1.5"]
    )
    assert res.exit_code == 2 and "invalid split options" in res.output
    res = CliRunner().invoke(
        app, ["data", "split", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--seed", "2"]
    )
    assert res.exit_code == 0, res.output
    assert os.path.islink(tmp_path / "o" / read_rows(tmp_path / "o")[0]["file"])
