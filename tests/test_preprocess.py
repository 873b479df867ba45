"""Preprocessing (values, shapes, determinism, Pillow as the resize reference) and the tensor cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

import medfab.data.cache as cache_mod
from medfab.data import PreprocessConfig, load_tensors, pipeline
from medfab.data.preprocess import preprocess, resize, separable_resize


def _cfg(**kw) -> PreprocessConfig:
    return PreprocessConfig(**kw).resolve(eight_bit=True)


@pytest.mark.parametrize("shape,out", [((208, 176), (64, 54)), ((20, 30), (64, 96)), ((33, 33), (10, 10))])
def test_separable_resize_matches_pillow_bilinear(shape, out):
    """The 3D path's weights, checked in 2D against Pillow's antialiased BILINEAR (what 2D images use)."""
    a = np.random.default_rng(0).random(shape).astype(np.float32)
    ref = np.asarray(Image.fromarray(a, "F").resize(out[::-1], Image.BILINEAR))
    np.testing.assert_allclose(separable_resize(a, out), ref, atol=1e-5)
    np.testing.assert_allclose(resize(a, out), ref, atol=1e-6)
    vol = np.repeat(a[None], 3, axis=0)  # (3, H, W): resizing H, W only must act like 2D on each plane
    np.testing.assert_allclose(resize(vol, (3, *out))[1], ref, atol=1e-5)


def test_fixed_normalise_pad_and_determinism():
    a = np.zeros((20, 40), np.float32)
    a[:, :20], a[:, 20:] = 255.0, 127.5  # left half white, right half mid-grey
    cfg = _cfg(size=8)
    assert cfg.normalise == "fixed" and cfg.fixed_range == (0.0, 255.0)
    x = preprocess(a, cfg)
    assert x.shape == (8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x, preprocess(a.copy(), cfg))
    # 20x40 -> 4x8 content, centred: rows 0-1 and 6-7 are padding (-1)
    np.testing.assert_array_equal(x[:2], -1.0)
    np.testing.assert_array_equal(x[6:], -1.0)
    np.testing.assert_allclose(x[2:6, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[2:6, 7], 0.0, atol=1e-6)


def test_percentile_minmax_constant_and_range():
    rng = np.random.default_rng(1)
    a = rng.normal(1000, 200, (32, 32)).astype(np.float32)
    a[0, 0] = 1e6  # an outlier: percentile clips it, minmax is dominated by it
    p = preprocess(a, PreprocessConfig(size=32, normalise="percentile"))
    lo, hi = np.percentile(a, [0.5, 99.5])
    np.testing.assert_allclose(p, np.clip((a - lo) / (hi - lo) * 2 - 1, -1, 1), atol=1e-5)
    m = preprocess(a, PreprocessConfig(size=32, normalise="minmax"))
    assert m.min() == -1.0 and m.max() == pytest.approx(1.0) and np.median(m) < -0.99
    assert (preprocess(np.full((5, 5), 7.0, np.float32), PreprocessConfig(size=4, normalise="minmax")) == -1).all()
    big = preprocess(a * 10, _cfg(size=16))  # values above the fixed range are clipped, never outside [-1, 1]
    assert big.min() >= -1 and big.max() <= 1


def test_crop_head_fills_the_frame_and_3d():
    a = np.zeros((100, 100), np.float32)
    a[40:60, 30:70] = 200.0  # a 20x40 "head" in empty background
    plain = preprocess(a, _cfg(size=20))
    cropped = preprocess(a, _cfg(size=20, fit="crop_head", margin=0.0))
    assert (plain > 0).sum() == pytest.approx(0.08 * 400, abs=8)  # 8 % of the frame before cropping
    assert (cropped > -1).sum() == 200  # 20x40 -> 10x20 of 20x20
    vol = np.random.default_rng(2).random((6, 10, 8)).astype(np.float32)
    v = preprocess(vol, PreprocessConfig(size=5, spatial_dims=3, normalise="minmax"))
    assert v.shape == (5, 5, 5) and v.min() >= -1 and v.max() <= 1
    np.testing.assert_array_equal(v[0], -1.0)  # depth 6 -> 3 planes of 5, padded on both sides


def test_config_validation_and_resolution():
    with pytest.raises(ValueError):
        PreprocessConfig(size=64, colour="rgb")  # extra keys are refused
    with pytest.raises(ValueError):
        PreprocessConfig(fixed_range=(5, 1))
    assert PreprocessConfig().resolve(eight_bit=False).normalise == "percentile"
    from medfab.errors import MedfabError

    with pytest.raises(MedfabError, match="fixed_range"):
        PreprocessConfig(normalise="fixed").resolve(eight_bit=False)
    cfg = PreprocessConfig(size=32, fit="crop_head")
    assert PreprocessConfig.model_validate_json(cfg.model_dump_json()) == cfg


def _folder(root, n=3, value=100, size=(12, 10)):
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full(size, value + 10 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


def _age(root, seconds=3600):
    """Make every file ``seconds`` old, like a data set on disk (fresh files are never remembered unhashed)."""
    t = time.time() - seconds
    for f in root.rglob("*.png"):
        os.utime(f, (t, t))
    return root


def test_cache_hit_invalidation_and_auto_16bit(tmp_path, monkeypatch):
    root, cache = _age(_folder(tmp_path / "data")), tmp_path / "cache"
    ts = load_tensors(root, size=8, cache_dir=cache, progress=False)
    assert ts.x.shape == (6, 1, 8, 8) and ts.keys[0] == "a/0.png" and list(ts.y) == [0, 0, 0, 1, 1, 1]
    assert ts.preprocess["normalise"] == "fixed"
    np.testing.assert_allclose(ts.x[0, 0, 4, 4], 100 / 127.5 - 1, atol=1e-6)
    assert len(list((cache / "tensors").iterdir())) == 1

    decoded, hashed = [], []
    real_load, real_hash = pipeline.load_array_with_mode, cache_mod._sha256_file
    monkeypatch.setattr(pipeline, "load_array_with_mode", lambda s: decoded.append(s) or real_load(s))
    monkeypatch.setattr(cache_mod, "_sha256_file", lambda p: hashed.append(p) or real_hash(p))
    again = load_tensors(root, size=8, cache_dir=cache, progress=False)
    assert isinstance(again.x, np.memmap) and len(decoded) == 1 and hashed == []  # hit: no re-hash, 1 probe
    np.testing.assert_array_equal(again.x, ts.x)

    # a changed file (same size, new content) invalidates
    Image.fromarray(np.full((12, 10), 250, np.uint8)).save(root / "b" / "2.png")
    changed = load_tensors(root, size=8, cache_dir=cache, progress=False)
    assert len(hashed) == 1 and changed.x[5, 0, 4, 4] == pytest.approx(250 / 127.5 - 1, abs=1e-6)
    # ... also when it changes again within the file system's timestamp granularity (same size, same mtime:
    # coarse clocks tick every few ms): a fresh file is hashed every time, never remembered by its mtime
    first = (root / "b" / "2.png").stat()
    Image.fromarray(np.full((12, 10), 240, np.uint8)).save(root / "b" / "2.png")
    os.utime(root / "b" / "2.png", ns=(first.st_atime_ns, first.st_mtime_ns))
    assert (root / "b" / "2.png").stat().st_size == first.st_size
    racy = load_tensors(root, size=8, cache_dir=cache, progress=False)
    assert racy.x[5, 0, 4, 4] == pytest.approx(240 / 127.5 - 1, abs=1e-6)
    # another config invalidates
    other = load_tensors(root, preprocess=PreprocessConfig(size=8, normalise="minmax"), cache_dir=cache,
                         progress=False)
    assert (other.x[:, 0, 4, 4] == -1).all()  # constant images -> -1 under minmax
    assert len(list((cache / "tensors").iterdir())) == 4

    # a 16-bit file after 8-bit ones: "auto" must not keep assuming 0..255 (the pass starts over)
    ramp = np.tile(np.linspace(0, 40000, 10), (10, 1)).astype(np.uint16)  # (10, 10) left-to-right ramp
    Image.fromarray(ramp).save(root / "b" / "2.png")
    mixed = load_tensors(root, size=10, cache_dir=cache, progress=False)
    assert mixed.preprocess["normalise"] == "percentile"
    lo, hi = np.percentile(ramp, [0.5, 99.5])
    np.testing.assert_allclose(mixed.x[5, 0], np.clip((ramp - lo) / (hi - lo) * 2 - 1, -1, 1), atol=1e-5)
    assert (mixed.x[0] == -1).all()  # constant 8-bit image: percentile range is empty -> background


def test_killed_run_leaves_no_entry(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    calls = []

    def dies(a, cfg, name=""):
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return preprocess(a, cfg, name=name)

    monkeypatch.setattr(pipeline, "preprocess_array", dies)
    with pytest.raises(KeyboardInterrupt):
        load_tensors(root, size=8, cache_dir=cache, progress=False)
    assert list((cache / "tensors").iterdir()) == []  # neither an entry nor a temporary folder
    monkeypatch.undo()
    assert load_tensors(root, size=8, cache_dir=cache, progress=False).x.shape == (6, 1, 8, 8)


def test_cache_location_from_environment(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data")
    monkeypatch.setenv("MEDFAB_CACHE", str(tmp_path / "envcache"))
    load_tensors(root, size=8, progress=False)
    assert len(list((tmp_path / "envcache" / "tensors").iterdir())) == 1
    monkeypatch.setenv("MEDFAB_CACHE", "off")
    ts = load_tensors(root, size=8, progress=False)
    assert not isinstance(ts.x, np.memmap) and ts.x.shape == (6, 1, 8, 8)
    assert cache_mod.clear_cache(tmp_path / "envcache") >= 6 * 8 * 8 * 4
    assert not (tmp_path / "envcache" / "tensors").exists()


def test_worker_processes_give_the_same_tensors(tmp_path):
    root = _folder(tmp_path / "data", n=5)
    Image.fromarray(np.arange(120, dtype=np.uint8).reshape(12, 10)).save(root / "a" / "0.png")
    one = load_tensors(root, size=8, cache_dir=tmp_path / "c1", progress=False, workers=1)
    two = load_tensors(root, size=8, cache_dir=tmp_path / "c2", progress=False, workers=2)
    np.testing.assert_array_equal(one.x, two.x)
    (root / "b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # errors come back from the workers too
    from medfab.errors import MedfabError

    with pytest.raises(MedfabError, match="3.png"):
        load_tensors(root, size=8, cache_dir=tmp_path / "c2", progress=False, workers=2)
    assert [p.name for p in (tmp_path / "c2" / "tensors").iterdir()] == [p.name for p in
                                                                         (tmp_path / "c1" / "tensors").iterdir()]


def test_unwritable_cache_falls_back_to_memory(tmp_path):
    root = _folder(tmp_path / "data")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not caching"):
        ts = load_tensors(root, size=8, cache_dir=blocker, progress=False)
    assert ts.x.shape == (6, 1, 8, 8) and not isinstance(ts.x, np.memmap)
