"""Bad input -> one MedfabError that names the file and says what to do; nothing half-written left."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medfab.data import load_tensors
from medfab.data.readers import load_array, read_dataset
from medfab.errors import MedfabError


def _png(path, value=100, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return path


def _two_classes(root):
    _png(root / "a" / "1.png")
    _png(root / "b" / "1.png", 200)
    return root


def _raises(fn, *needles):
    with pytest.raises(MedfabError) as e:
        fn()
    assert e.value.hint, "every error must say what to do"
    for n in needles:
        assert str(n) in str(e.value)
    return e.value


def test_missing_path_and_single_file(tmp_path):
    _raises(lambda: read_dataset(tmp_path / "nope"), "nope", "does not exist")
    f = _png(tmp_path / "x.png")
    _raises(lambda: read_dataset(f), "x.png")
    _raises(lambda: read_dataset(_two_classes(tmp_path / "d"), reader="jpeg"), "jpeg")


def test_truncated_and_unreadable_images(tmp_path):
    root = _two_classes(tmp_path / "d")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)).save(buf, "JPEG")
    (root / "a" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "b" / "junk.png").write_bytes(b"this is not a png at all")
    ds = read_dataset(root)
    by = {s.path.name: s for s in ds.samples}
    assert "junk.png" in by  # claims to be an image: kept, so that loading it fails loudly
    _raises(lambda: load_array(by["cut.jpg"]), "cut.jpg")
    _raises(lambda: load_array(by["junk.png"]), "junk.png")
    cache = tmp_path / "cache"
    _raises(lambda: load_tensors(root, size=8, cache_dir=cache, progress=False), "2 files", "cut.jpg", "junk.png")
    assert list((cache / "tensors").iterdir()) == []  # nothing half-written


def test_empty_class_and_too_few_classes(tmp_path):
    root = _two_classes(tmp_path / "d")
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("x")
    _raises(lambda: read_dataset(root), str(root / "c"), "no readable")
    one = tmp_path / "one"
    _png(one / "only" / "1.png")
    assert read_dataset(one).classes == ["only"]
    _raises(lambda: read_dataset(one, min_classes=2), "1 class", "at least 2")
    flat = tmp_path / "flat"
    _png(flat / "1.png")
    _raises(lambda: read_dataset(flat), "no class folders")
    _raises(lambda: load_tensors(_two_classes(tmp_path / "e"), split="train", progress=False), "no split")


def test_nan_and_4d_volumes(tmp_path):
    v = np.ones((4, 4, 4), np.float32)
    v[1, 2, 3] = np.nan
    for name, data in [("nan.nii.gz", v), ("ok.nii.gz", np.ones((4, 4, 4), np.float32))]:
        (tmp_path / "d" / name[:2]).mkdir(parents=True)
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "d" / name[:2] / name))
    ds = read_dataset(tmp_path / "d")
    _raises(lambda: load_array(ds.samples[0]), "nan.nii.gz", "NaN")
    (tmp_path / "e" / "a").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), np.eye(4)), str(tmp_path / "e" / "a" / "fmri.nii"))
    _raises(lambda: read_dataset(tmp_path / "e"), "fmri.nii", "4D")
    tif = tmp_path / "f" / "a" / "nan.tif"
    tif.parent.mkdir(parents=True)
    Image.fromarray(np.full((4, 4), np.inf, np.float32)).save(tif)
    _raises(lambda: load_array(read_dataset(tmp_path / "f").samples[0]), "nan.tif")


def test_labels_csv_must_match_files(tmp_path):
    root = tmp_path / "d"
    _png(root / "img" / "1.png")
    _png(root / "img" / "2.png")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nimg/1.png,a\nimg/2.png,b\nimg/3.png,b\n")
    _raises(lambda: read_dataset(root, labels_csv=csv), "img/3.png", "do not exist")
    csv.write_text("file,label\nimg/1.png,a\n")
    _raises(lambda: read_dataset(root, labels_csv=csv), "img/2.png", "no row")
    csv.write_text("name,class\nimg/1.png,a\n")
    _raises(lambda: read_dataset(root, labels_csv=csv), "file,label")
    _raises(lambda: read_dataset(root, labels_csv=tmp_path / "missing.csv"), "missing.csv")


def test_bad_npz_and_dimension_mismatch(tmp_path):
    f = tmp_path / "x.npz"
    np.savez(f, pictures=np.zeros((2, 4, 4)))
    _raises(lambda: read_dataset(f), "x.npz", "images")
    np.savez(f, images=np.zeros((2, 4, 4)), labels=np.zeros((2, 3)))
    _raises(lambda: read_dataset(f), "multi-label")
    from medfab.data import PreprocessConfig

    root = _two_classes(tmp_path / "d")
    _raises(lambda: load_tensors(root, preprocess=PreprocessConfig(size=8, spatial_dims=3), progress=False,
                                 cache_dir=tmp_path / "c"), "spatial_dims=3", "1.png")
