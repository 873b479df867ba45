"""medfab data inspect and the duplicate detectors, on tiny synthetic image folders."""

import io
import itertools
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from medfab.data import duplicates as dup
from medfab.data.inspect import inspect_dataset


def blob(seed: int, h: int = 48, w: int = 40) -> np.ndarray:
    """A smooth random uint8 image, different for every seed (structure at several scales)."""
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.normal(size=(h, w)), 3) + 0.5 * gaussian_filter(rng.normal(size=(h, w)), 1)
    a = (a - a.min()) / (a.max() - a.min())
    return (a * 255).astype(np.uint8)


def jpeg_noisy_copy(a: np.ndarray, seed: int, quality: int = 60, sd: float = 3.0) -> np.ndarray:
    """The same image after a JPEG round trip and mild noise, as a re-export would produce."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    b = np.asarray(Image.open(buf), np.float32) + np.random.default_rng(seed).normal(0, sd, a.shape)
    return np.clip(b, 0, 255).astype(np.uint8)


def make_dataset(root, seed0: int = 0):
    """train/{a,b}: 6 images each, test/{a,b}: 3 each, plus the traps the test looks for."""
    seed = itertools.count(seed0)
    for split, n in (("train", 6), ("test", 3)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(blob(next(seed))).save(root / split / c / f"{k}.png")
    shutil.copy(root / "train/a/0.png", root / "train/a/copy_of_0.png")  # exact duplicate
    src = np.asarray(Image.open(root / "train/b/1.png"))
    Image.fromarray(jpeg_noisy_copy(src, 1)).save(
        root / "test/b/leak.jpg", quality=90
    )  # near dup, cross split
    (root / "train/a/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)  # unreadable
    Image.fromarray(blob(999)).convert("RGB").save(root / "train/b/colour.png")  # RGB 8-bit
    deep = np.asarray(Image.open(root / "train/a/3.png")).astype(np.uint16) * 257
    Image.fromarray(deep).save(root / "test/a/deep.png")  # 16-bit re-export
    Image.fromarray(blob(997, 30, 30)).save(root / "test/a/small.png")  # odd size
    (root / "train/notes.txt").write_text("not a class folder")


def test_inspect_finds_counts_modes_duplicates_and_unreadable(tmp_path):
    make_dataset(tmp_path)
    r = inspect_dataset(tmp_path, progress=False)
    assert r.splits == ["test", "train"]
    assert r.counts == {"train": {"a": 8, "b": 7}, "test": {"a": 5, "b": 4}}
    assert r.modes == {"grey 8-bit": 21, "RGB 8-bit": 1, "grey 16-bit": 1}
    assert r.sizes == [("48x40", 22), ("30x30", 1)] and r.other_sizes == 0
    assert [k for k, _ in r.unreadable] == ["train/a/broken.png"]
    assert r.exact_duplicates == [["train/a/0.png", "train/a/copy_of_0.png"]]
    assert r.cross_split_exact == 0
    # the two planted near pairs (the exact copy is reported as exact only), both across the split
    assert sorted((a, b, cross) for a, b, _, cross in r.near_duplicates) == [
        ("test/a/deep.png", "train/a/3.png", True),
        ("test/b/leak.jpg", "train/b/1.png", True),
    ]
    assert r.cross_split_near == 2
    assert r.label_conflicts == []
    assert r.imbalance_ratio == pytest.approx(8 / 7, abs=0.01)
    text = " ".join(p.what for p in r.problems)
    assert "1 file(s) cannot be read" in text and "2 near-duplicate pair(s) cross" in text
    assert "1 sample(s) are exact copies" in text and "sizes differ" in text and "modes differ" in text
    assert "skipped" in text  # the stray notes.txt
    json.dumps(r.to_dict())  # the --json output is serialisable


def test_imbalance_and_missing_split_problems(tmp_path):
    for c, n in (("big", 12), ("tiny", 2)):
        (tmp_path / c).mkdir()
        for k in range(n):
            Image.fromarray(blob(100 * len(c) + k)).save(tmp_path / c / f"{k}.png")
    r = inspect_dataset(tmp_path, progress=False)
    assert r.splits == [] and r.imbalance_ratio == 6.0
    assert r.near_duplicates == [] and r.exact_duplicates == []
    text = " ".join(p.what + p.todo for p in r.problems)
    assert "class tiny has 2 images (14 %)" in text and "--balance-to" in text and "medfab data split" in text


def test_duplicates_with_different_labels_are_flagged(tmp_path):
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
        for k in range(3):
            Image.fromarray(blob(10 * ord(c) + k)).save(tmp_path / c / f"{k}.png")
    src = np.asarray(Image.open(tmp_path / "x/0.png"))
    Image.fromarray(jpeg_noisy_copy(src, 0)).save(tmp_path / "y/copy.jpg", quality=95)
    r = inspect_dataset(tmp_path, progress=False)
    assert r.label_conflicts == [("x/0.png", "y/copy.jpg")]
    assert any("carry different labels" in p.what for p in r.problems)


def test_hash_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    h[10] = h[3] ^ np.uint64(0b1011)  # 3 bits away
    h[20] = h[3]  # identical
    got = {tuple(p) for p in dup.hash_pairs(h, max_bits=20)}
    want = {
        (i, j) for i in range(300) for j in range(i + 1, 300) if (int(h[i]) ^ int(h[j])).bit_count() <= 20
    }
    assert got == want and (3, 10) in got and (3, 20) in got


def test_groups_follow_chains():
    pairs = np.array([[0, 1], [1, 2], [6, 5], [9, 7]])
    assert dup.near_duplicate_groups(10, pairs) == [[0, 1, 2], [5, 6], [7, 9]]
    labels = dup.group_labels(10, pairs)
    assert labels[0] == labels[2] != labels[5] == labels[6] and len(set(labels)) == 6  # + singletons 3, 4, 8


def test_phash_ignores_intensity_scale_and_distance_separates_copies_from_other_images():
    imgs = [blob(s, 64, 64).astype(np.float32) for s in range(40)]
    h = dup.perceptual_hashes(imgs)
    assert (dup.perceptual_hashes([a * 3 + 7 for a in imgs]) == h).all()
    copies = [
        jpeg_noisy_copy(a.astype(np.uint8), s, quality=50, sd=5).astype(np.float32)
        for s, a in enumerate(imgs)
    ]
    copies[:10] = [a * 0.8 + 20 for a in imgs[:10]]  # brightness / contrast re-windowed
    thumbs = np.stack([dup.thumbnail(a) for a in imgs + copies])  # (80, 32, 32)
    thumbs = dup.normalise_thumbnails(thumbs, 0.0, 255.0)
    pairs, r = dup.near_duplicate_pairs(thumbs, dup.perceptual_hashes(thumbs))
    assert {tuple(p) for p in pairs} == {(i, i + 40) for i in range(40)}  # every copy, nothing else
    assert (r <= dup.MAX_RMSE).all() and (r[:10] < 1e-4).all()  # affine copies first, at ~0
    # brute force over all pairs of different images (no hash stage): none is as close as the threshold
    v = thumbs.reshape(80, 16, 2, 16, 2).mean((2, 4)).reshape(80, -1)
    others = np.array([(i, j) for i in range(40) for j in range(i + 1, 40)])
    assert dup.pair_distance(v, others)[0].min() > 2 * dup.MAX_RMSE


def test_pair_distance_is_the_least_squares_residual():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(6, 50)).astype(np.float32)
    pairs = np.array([[0, 1], [2, 3], [4, 5]])
    d, gain = dup.pair_distance(v, pairs)
    for (i, j), dk, gk in zip(pairs, d, gain):
        res = []
        for x, y in ((v[i], v[j]), (v[j], v[i])):  # fit y ~ g x + c by least squares, both ways
            X = np.stack([x, np.ones_like(x)], 1)
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            res.append((np.sqrt(np.mean((y - X @ coef) ** 2)), coef[0]))
        assert dk == pytest.approx(max(r for r, _ in res), rel=1e-4)
        assert gk == pytest.approx(min(g for _, g in res), rel=1e-4)


def test_content_hash(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    (tmp_path / "y").write_bytes(b"abc")
    (tmp_path / "z").write_bytes(b"abd")
    assert (
        dup.content_hash(tmp_path / "x")
        == dup.content_hash(tmp_path / "y")
        != dup.content_hash(tmp_path / "z")
    )


def test_cli_inspect_writes_json_and_fails_clearly(tmp_path):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    make_dataset(tmp_path / "d")
    res = CliRunner().invoke(
        app, ["data", "inspect", str(tmp_path / "d"), "--json", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 0, res.output
    assert "cross-split" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["cross_split_near"] == 2
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())


def test_subjects_in_two_splits_are_reported(tmp_path):
    (tmp_path / "imgs").mkdir()
    rows = ["file,label,subject"]
    for k in range(6):
        Image.fromarray(blob(300 + k)).save(tmp_path / "imgs" / f"{k}.png")
        rows.append(f"{k}.png,{'p' if k % 2 else 'q'},s{k // 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    r = inspect_dataset(tmp_path / "imgs", labels_csv=tmp_path / "labels.csv", progress=False)
    assert r.subjects == 3 and r.cross_split_subjects == []  # a CSV layout has no splits to leak across
    assert r.counts == {"all": {"p": 3, "q": 3}}


def test_subject_leak_across_splits(tmp_path, monkeypatch):
    from medfab.data import readers
    from medfab.data.sample import Dataset, Sample

    samples = []
    for k, (split, subject) in enumerate([("train", "s1"), ("train", "s2"), ("test", "s1"), ("test", "s3")]):
        f = tmp_path / f"{k}.png"
        Image.fromarray(blob(400 + k)).save(f)
        samples.append(Sample(f, "c", split, subject))
    monkeypatch.setattr(readers, "read_dataset", lambda path, **kw: Dataset(tmp_path, samples, ["c"]))
    r = inspect_dataset(tmp_path, progress=False)
    assert r.subjects == 3 and r.cross_split_subjects == ["s1"]
    assert any("1 subject(s) appear in more than one split" in p.what for p in r.problems)
