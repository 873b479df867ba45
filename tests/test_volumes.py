"""3D volumes: one-class folders, output geometry, segmentation matching/mapping/channels, NIfTI pair writing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medfab.data.dlmuse import TISSUES, lookup, markdown_table
from medfab.data.segmentation import match_segmentations, tissue_channels, to_tissues
from medfab.data.volumes import canonical_affine, output_affine, reference_geometry, single_class_dataset
from medfab.errors import MedfabError
from medfab.sampling.writers import NIFTI_DESCRIP, seg_path, write_sample

# A PSR-oriented affine like ixi_t1's (voxel axes: posterior, superior, right), 2 mm voxels.
PSR = np.array([[0.0, 0, 2, -88], [-2, 0, 0, 118], [0, 2, 0, -135], [0, 0, 0, 1]])


def _write(path, data, affine=PSR):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_canonical_affine_matches_nibabel_and_output_affine_rule(tmp_path):
    p = _write(tmp_path / "v.nii.gz", np.zeros((12, 12, 9), np.uint8))
    affine, shape = canonical_affine(p)
    canon = nib.as_closest_canonical(nib.load(str(p)))
    assert np.allclose(affine, canon.affine) and shape == canon.shape == (9, 12, 12)
    # size 12: no resize, the 9-voxel axis is centred at offset 1 -> output voxel q is input voxel q - 1
    out = output_affine(np.eye(4), (9, 12, 12), 12)
    assert np.allclose(out[:3, :3], np.eye(3)) and np.allclose(out[:3, 3], [-1, 0, 0])
    # size 8: 12 -> 8 (x1.5 spacing), 9 -> 6 at offset 1; voxel centres stay aligned
    out = output_affine(np.eye(4), (9, 12, 12), 8)
    assert np.allclose(np.diag(out)[:3], 1.5)
    assert np.allclose(out[:3, 3], [(0.5 - 1) * 1.5 - 0.5, 0.25, 0.25])
    geo = reference_geometry(p, 8)
    assert geo["spacing_mm"] == [3.0, 3.0, 3.0] and geo["input_shape"] == [9, 12, 12]


def test_single_class_folder(tmp_path):
    for i in range(2):
        _write(tmp_path / f"s{i}_T1.nii.gz", np.zeros((4, 4, 4), np.uint8))
    ds = single_class_dataset(tmp_path)
    assert ds.classes == [tmp_path.name] and len(ds) == 2 and ds.samples[0].reader == "nifti"
    (tmp_path / "sub").mkdir()
    assert single_class_dataset(tmp_path) is None                    # class folders: the usual layout applies


def test_segmentation_matching_rule(tmp_path):
    seg = tmp_path / "seg"
    seg.mkdir()
    for name in ("IXI002_T1_DLMUSE", "IXI003_T1", "IXI004_T1_a", "IXI004_T1_b", "IXI0055_T1_DLMUSE"):
        _write(seg / f"{name}.nii.gz", np.zeros((2, 2, 2), np.uint8))
    got = match_segmentations([tmp_path / "IXI002_T1.nii.gz", tmp_path / "IXI003_T1.nii"], seg)
    assert [p.name for p in got] == ["IXI002_T1_DLMUSE.nii.gz", "IXI003_T1.nii.gz"]
    with pytest.raises(MedfabError, match="no segmentation for IXI005_T1.nii.gz") as e:
        match_segmentations([tmp_path / "IXI005_T1.nii.gz"], seg)      # IXI0055 is not IXI005 + "_"
    assert "<image stem>_<suffix>" in e.value.hint
    with pytest.raises(MedfabError, match="several for IXI004_T1"):
        match_segmentations([tmp_path / "IXI004_T1.nii.gz"], seg)


def test_dlmuse_mapping_table():
    lut = lookup()
    t = {name: i for i, name in enumerate(TISSUES)}
    assert TISSUES == ("background", "csf", "grey_matter", "white_matter")     # the 3D evaluation's labels 0..3
    assert [lut[i] for i in (0, 1, 46, 69, 250)] == [t["background"]] * 5     # sulcal CSF, chiasm, unlisted
    assert [lut[i] for i in (51, 52, 4, 11, 49)] == [t["csf"]] * 5
    assert [lut[i] for i in (100, 207, 47, 59, 38)] == [t["grey_matter"]] * 5
    assert [lut[i] for i in (81, 95, 40, 35)] == [t["white_matter"]] * 4
    assert "| 100-207 | grey_matter |" in markdown_table()
    assert to_tissues(np.array([0.0, 51.0, 120.0]), "dlmuse").tolist() == [0, 1, 2]
    with pytest.raises(MedfabError):
        to_tissues(np.array([0, 40]), "identity")


def test_dlmuse_mapping_agrees_with_the_3d_evaluation():
    tissues = pytest.importorskip("medfab.evaluation.volumes.tissues")
    lut = lookup()
    for k, ids in enumerate(tissues.DLMUSE_TISSUES.values(), start=1):
        assert all(lut[i] == k for i in ids)
    assert sum(len(v) for v in tissues.DLMUSE_TISSUES.values()) == int((lut[:256] > 0).sum())


def test_tissue_channels_argmax_recovers_labels_and_pads_background():
    rng = np.random.default_rng(0)
    tissue = rng.integers(0, 3, size=(6, 8, 8)).astype(np.uint8)
    ch = tissue_channels(tissue, 3, 8)                                # (3, 8, 8, 8), no resize: exact
    assert ch.shape == (3, 8, 8, 8) and ch.min() >= -1 and ch.max() <= 1
    assert np.array_equal(ch.argmax(0)[1:7], tissue)                  # 6 -> 8 padded at offset 1
    assert (ch.argmax(0)[0] == 0).all() and (ch.argmax(0)[7] == 0).all()


def test_nifti_pair_is_written_with_affine_spacing_and_synthetic_marker(tmp_path):
    affine = np.diag([3.75, 3.75, 3.75, 1.0])
    affine[:3, 3] = [-117.3, -118.9, -134.4]
    config = {"volume": {"affine": affine.tolist()},
              "segmentation": {"image_channels": 1, "classes": ["background", "csf", "gm"]}}
    x = np.full((4, 8, 8, 8), -1.0, np.float32)                       # image + 3 tissue channels
    x[0] = np.linspace(-1, 1, 8)[None, None, :]
    x[1, :4], x[2, 4:6], x[3, 6:] = 1.0, 1.0, 1.0
    (tmp_path / "healthy").mkdir()
    write_sample(tmp_path, "healthy/healthy_7.nii.gz", x, bit_depth=8, description="SYNTHETIC image", config=config)
    seg_rel = seg_path("healthy/healthy_7.nii.gz", config)
    assert seg_rel == "healthy/healthy_7_seg.nii.gz"
    img = nib.load(str(tmp_path / "healthy/healthy_7.nii.gz"))
    seg = nib.load(str(tmp_path / seg_rel))
    for im in (img, seg):
        assert np.allclose(im.affine, affine, atol=1e-4)
        assert np.allclose(im.header.get_zooms(), (3.75, 3.75, 3.75))
        assert b"SYNTHETIC" in bytes(im.header["descrip"])
    assert bytes(img.header["descrip"]).rstrip(b"\0") == NIFTI_DESCRIP
    labels = np.asarray(seg.dataobj)
    assert labels.dtype == np.uint8 and seg.header.get_intent()[0] == "label"
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels[:4] == 0).all() and (labels[4:6] == 1).all() and (labels[6:] == 2).all()
    assert np.asarray(img.dataobj).shape == (8, 8, 8)
    # an image-only run: no segmentation, the unit affine of old runs when no geometry is recorded
    write_sample(tmp_path, "healthy/b.nii.gz", x[:1], bit_depth=8, description="d", config={})
    assert seg_path("healthy/b.nii.gz", {}) is None and not (tmp_path / "healthy/b_seg.nii.gz").exists()
    assert np.allclose(nib.load(str(tmp_path / "healthy/b.nii.gz")).affine, np.eye(4))


def test_dims_flag_is_checked_against_the_data():
    from medfab.data.tensors import TensorSet
    from medfab.data.volumes import check_volume_data

    ts = TensorSet(np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64), ["a"], ["x", "y"])
    check_volume_data(ts, None)
    check_volume_data(ts, 2)
    with pytest.raises(MedfabError, match="--dims 3 but the data are 2D"):
        check_volume_data(ts, 3)
