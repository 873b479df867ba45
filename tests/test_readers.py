"""Every reader on tiny files written into tmp_path: images of all modes, NIfTI, DICOM, MedMNIST .npz."""

from __future__ import annotations

import json
import pickle

import nibabel as nib
import numpy as np
from PIL import Image

from medfab.data import load_tensors
from medfab.data.readers import load_array, read_dataset, relative_key, subject_hash

PATIENT_NAME = "Doe^Janeprivate"
PATIENT_ID = "PID-778899"


def _save(im: Image.Image, path, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def write_dicom(path, pixels, *, series="1.2.3.4.5", instance=1, z=0.0, slope=1.0, intercept=0.0,
                photometric="MONOCHROME2", patient_id=PATIENT_ID):
    """pixels: (H, W), or (F, H, W) for a multi-frame file."""
    """A minimal uncompressed CT slice, 12 bits stored in 16."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{series}.{instance}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, patient_id, "19700101"
    ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", series, instance
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_image_modes_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    v16 = rng.integers(0, 65535, (12, 10)).astype(np.uint16)
    _save(Image.fromarray(v16), root / "train" / "a" / "sixteen.png")
    rgba = rng.integers(0, 256, (9, 11, 4)).astype(np.uint8)
    _save(Image.fromarray(rgba, "RGBA"), root / "train" / "a" / "rgba.png")
    pal = Image.fromarray(rng.integers(0, 4, (8, 8)).astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * 756)
    _save(pal, root / "train" / "b" / "palette.png")
    grey = rng.integers(0, 256, (7, 13)).astype(np.uint8)
    _save(Image.fromarray(grey), root / "train" / "b" / "really_png.jpg", fmt="PNG")  # extension lies
    _save(Image.fromarray(grey), root / "validation" / "b" / "g.bmp")
    _save(Image.fromarray(rng.random((5, 6)).astype(np.float32)), root / "test" / "a" / "f.tif")
    la = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA")
    _save(la, root / "test" / "b" / "la.png")
    (root / "train" / "a" / "notes.txt").write_text("not an image")
    (root / "train" / "a" / ".DS_Store").write_bytes(b"\0\1")

    ds = read_dataset(root)
    assert ds.classes == ["a", "b"] and ds.splits == ["test", "train", "val"]
    assert len(ds) == 7
    assert any("notes.txt" in p for p in ds.problems) and any(".DS_Store" in p for p in ds.problems)
    by = {s.path.name: s for s in ds.samples}
    assert by["g.bmp"].split == "val" and by["palette.png"].label == "b"
    assert relative_key(by["g.bmp"], ds.root) == "validation/b/g.bmp"

    np.testing.assert_array_equal(load_array(by["sixteen.png"]), v16.astype(np.float32))  # 16 bits kept
    luma = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(load_array(by["rgba.png"]), luma * rgba[..., 3] / 255.0, rtol=1e-5, atol=1e-3)
    lut = np.array([0.0, 0.299 * 255, 0.587 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30], np.float32)
    np.testing.assert_allclose(load_array(by["palette.png"]), lut[np.asarray(pal)], atol=1e-3)
    np.testing.assert_array_equal(load_array(by["really_png.jpg"]), grey.astype(np.float32))
    np.testing.assert_array_equal(load_array(by["la.png"]), grey.astype(np.float32))
    assert load_array(by["f.tif"]).dtype == np.float32 and load_array(by["f.tif"]).shape == (5, 6)


def test_class_folders_without_splits(tmp_path):
    for c in ("yes", "no"):
        for i in range(2):
            _save(Image.fromarray(np.full((6, 6), 40 * i, np.uint8)), tmp_path / c / f"{i}.jpg")
    ds = read_dataset(tmp_path, min_classes=2)
    assert ds.classes == ["no", "yes"] and ds.splits == [] and ds.labels() == [0, 0, 1, 1]


def _nifti(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def test_nifti_volumes_slices_and_orientation(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.random((6, 7, 8)).astype(np.float32)
    _nifti(tmp_path / "ad" / "s1.nii.gz", vol)
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])  # stored L->R: reading must flip it to RAS
    _nifti(tmp_path / "cn" / "s2.nii", vol, flipped)

    ds = read_dataset(tmp_path)
    assert [s.reader for s in ds.samples] == ["nifti", "nifti"] and all(s.index is None for s in ds.samples)
    np.testing.assert_allclose(load_array(ds.samples[0]), vol, atol=1e-6)
    np.testing.assert_allclose(load_array(ds.samples[1]), vol[::-1], atol=1e-6)

    ds2 = read_dataset(tmp_path, volume_mode="2d", slice_axis=2, slice_range=(2, 6))
    assert len(ds2) == 8 and [s.index for s in ds2.samples[:4]] == [2, 3, 4, 5]
    np.testing.assert_allclose(load_array(ds2.samples[1]), np.rot90(vol[:, :, 3]), atol=1e-6)
    ds3 = read_dataset(tmp_path, volume_mode="2d", slice_axis=0)
    assert len(ds3) == 12 and load_array(ds3.samples[0]).shape == (8, 7)
    assert relative_key(ds2.samples[0], ds2.root) == "ad/s1.nii.gz#axis2:2"

    ts = load_tensors(tmp_path, size=8, cache_dir=tmp_path / "cache", progress=False)
    assert ts.x.shape == (2, 1, 8, 8, 8) and ts.preprocess["normalise"] == "percentile"


def test_nifti_labels_csv_with_subjects(tmp_path):
    for i in range(3):
        _nifti(tmp_path / "scans" / f"v{i}.nii.gz", np.full((4, 4, 4), float(i), np.float32))
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,subject\nscans/v0.nii.gz,ad,S1\nscans/v1.nii.gz,cn,S2\nscans/v2.nii.gz,cn,S1\n")
    ds = read_dataset(tmp_path, labels_csv=csv, min_classes=2)
    assert ds.classes == ["ad", "cn"]
    assert [(s.path.name, s.label, s.subject) for s in ds.samples] == [
        ("v0.nii.gz", "ad", "S1"), ("v1.nii.gz", "cn", "S2"), ("v2.nii.gz", "cn", "S1")]


def test_dicom_series_rescale_monochrome1_and_privacy(tmp_path):
    rng = np.random.default_rng(2)
    slices = [rng.integers(0, 4000, (5, 6)) for _ in range(3)]
    order = [2, 0, 1]  # files written out of order; positions say the true order
    for k in order:
        write_dicom(tmp_path / "tumour" / "series1" / f"f{order.index(k)}.dcm", slices[k], instance=10 - k,
                    z=2.5 * k, slope=2.0, intercept=-1024.0)
    xray = rng.integers(0, 4096, (8, 9))
    write_dicom(tmp_path / "healthy" / "x1.dcm", xray, series="9.9.9", photometric="MONOCHROME1")
    write_dicom(tmp_path / "healthy" / "noext", xray, series="9.9.8", patient_id="OTHER")

    ds = read_dataset(tmp_path, min_classes=2)
    by = {s.path.name: s for s in ds.samples}
    assert set(by) == {"series1", "x1.dcm", "noext"} and by["series1"].label == "tumour"
    vol = load_array(by["series1"])
    np.testing.assert_allclose(vol, np.stack(slices) * 2.0 - 1024.0)
    np.testing.assert_allclose(load_array(by["x1.dcm"]), 4095.0 - xray)  # MONOCHROME1 mirrored on 0..4095
    np.testing.assert_allclose(load_array(by["noext"]), xray)  # found by content, no extension
    assert by["series1"].subject == subject_hash(PATIENT_ID) != by["noext"].subject

    ds2 = read_dataset(tmp_path, volume_mode="2d", slice_range=(1, 3))
    sl = [s for s in ds2.samples if s.path.name == "series1"]
    assert [s.index for s in sl] == [1, 2]
    np.testing.assert_allclose(load_array(sl[0]), slices[1] * 2.0 - 1024.0)

    # Patient metadata must reach no output: samples, problems, tensors, cache files.
    cache = tmp_path / "cache"
    ts = load_tensors(tmp_path, volume_mode="2d", cache_dir=cache, progress=False)
    outputs = repr(ds) + repr(ds2) + repr(pickle.dumps(ts)) + json.dumps(ts.keys)
    outputs += "".join(p.read_bytes().decode("latin-1") for p in cache.rglob("*") if p.is_file())
    for secret in (PATIENT_NAME, "Doe", PATIENT_ID, "19700101"):
        assert secret not in outputs


def test_dicom_multiframe(tmp_path):
    frames = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    write_dicom(tmp_path / "a" / "cine.dcm", frames, intercept=-10.0)
    write_dicom(tmp_path / "b" / "single.dcm", frames[0], series="7.7")
    ds = read_dataset(tmp_path)
    np.testing.assert_allclose(load_array(ds.samples[0]), frames - 10.0)
    ds2 = read_dataset(tmp_path, volume_mode="2d")
    assert [(s.path.name, s.index) for s in ds2.samples] == [("cine.dcm", i) for i in range(4)] + [("single.dcm", None)]
    np.testing.assert_allclose(load_array(ds2.samples[2]), frames[2] - 10.0)


def test_npz_medmnist(tmp_path):
    rng = np.random.default_rng(3)
    f = tmp_path / "pneumoniamnist.npz"
    tr = rng.integers(0, 256, (5, 8, 8)).astype(np.uint8)
    np.savez(f, train_images=tr, train_labels=np.array([[0], [1], [1], [0], [1]]),
             test_images=rng.integers(0, 256, (2, 8, 8)).astype(np.uint8), test_labels=np.array([[1], [0]]))
    ds = read_dataset(f)
    assert ds.classes == ["0", "1"] and ds.splits == ["test", "train"] and len(ds) == 7
    s = next(s for s in ds.samples if s.split == "train" and s.index == 3)
    np.testing.assert_array_equal(load_array(s), tr[3].astype(np.float32))
    assert relative_key(s, ds.root) == "pneumoniamnist.npz#train:3"

    g = tmp_path / "colour.npz"
    rgb = rng.integers(0, 256, (3, 4, 4, 3)).astype(np.uint8)
    np.savez(g, images=rgb, labels=np.array([0, 1, 1]), label_names=np.array(["normal", "tumour"]))
    ds = read_dataset(g)
    assert ds.classes == ["normal", "tumour"] and ds.samples[2].label == "tumour"
    np.testing.assert_allclose(load_array(ds.samples[0]), rgb[0] @ np.array([0.299, 0.587, 0.114]), atol=1e-3)
    ts = load_tensors(f, split="train", size=8, cache_dir=tmp_path / "c", progress=False)
    assert ts.x.shape == (5, 1, 8, 8) and list(ts.y) == [0, 1, 1, 0, 1]


def test_symlinked_files_and_folders(tmp_path):
    src = tmp_path / "src"
    _save(Image.fromarray(np.full((4, 4), 9, np.uint8)), src / "one.png")
    write_dicom(src / "series" / "s0.dcm", np.zeros((3, 3)), instance=1, z=0.0)
    write_dicom(src / "series" / "s1.dcm", np.ones((3, 3)), instance=2, z=1.0)
    root = tmp_path / "split"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "b").mkdir(parents=True)
    (root / "train" / "a" / "one.png").symlink_to(src / "one.png")
    (root / "train" / "b" / "series").symlink_to(src / "series", target_is_directory=True)
    (root / "train" / "b" / "loop").symlink_to(root / "train" / "b", target_is_directory=True)
    ds = read_dataset(root)
    assert [(relative_key(s, root), s.reader) for s in ds.samples] == [
        ("train/a/one.png", "image"), ("train/b/series", "dicom")]
    assert load_array(ds.samples[1]).shape == (2, 3, 3)
