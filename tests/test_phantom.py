"""The phantom cohort: determinism, layout, ground truth that follows the disease, balance, 3D, safety."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medfab.errors import MedfabError
from medfab.phantom import (
    CLASSES,
    COLUMNS,
    class_counts,
    make_cohort,
    render_subject,
    sample_params,
    subject_seed,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "phantom.json"}       # phantom.json records the --out path itself


def _rows(root: Path) -> list[dict]:
    with open(root / "ground_truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_cohort("alzheimer", 8, 32, 2, 3, tmp_path / "a", balance="equal")
    b = make_cohort("alzheimer", 8, 32, 2, 3, tmp_path / "b", balance="equal", workers=2)
    c = make_cohort("alzheimer", 8, 32, 2, 4, tmp_path / "c", balance="equal")
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb                                   # also independent of the number of workers
    assert len(fa) == 9                               # 8 images + ground_truth.csv
    imgs_a = [v for k, v in fa.items() if k.endswith(".png")]
    imgs_c = [v for k, v in fc.items() if k.endswith(".png")]
    assert not set(imgs_a) & set(imgs_c)              # a new seed gives new images


def test_layout_and_ground_truth_columns(tmp_path):
    from PIL import Image

    out = make_cohort("alzheimer", 16, 32, 2, 0, tmp_path / "ph")
    assert sorted(d.name for d in out.iterdir() if d.is_dir()) == sorted(CLASSES["alzheimer"])
    rows = _rows(out)
    assert list(rows[0].keys()) == COLUMNS
    assert len(rows) == 16 and len({r["id"] for r in rows}) == 16
    for r in rows:
        f = out / r["file"]
        assert f.parent.name == r["class"] and f.suffix == ".png"
        im = Image.open(f)
        assert im.mode == "L" and im.size == (32, 32)
        a = np.asarray(im)
        assert a[0, 0] == 0 and a.max() > 150          # black background, bright white matter
        assert r["contrast"] == "t1" and float(r["noise_sigma"]) > 0
    counts = {c: sum(r["class"] == c for r in rows) for c in CLASSES["alzheimer"]}
    assert counts == dict(zip(CLASSES["alzheimer"], class_counts(16, "alzheimer", "imbalanced").tolist()))
    assert (out / "phantom.json").exists()
    assert not list(tmp_path.glob(".ph.partial-*"))    # the temporary folder was renamed away


def test_alzheimer_truth_follows_the_stage():
    # The same subject seeds in every class: anatomy and scanner are shared, only the stage differs,
    # so the means must order exactly as the disease model says (no luck involved).
    classes = CLASSES["alzheimer"]
    truth = {k: [render_subject(sample_params("alzheimer", c, k, dims=2, size=48, seed=subject_seed(7, i),
                                              contrast="t1"))[1] for i in range(4)]
             for k, c in enumerate(classes)}
    mean = {key: [np.mean([t[key] for t in truth[k]]) for k in range(4)]
            for key in ("brain_fraction", "ventricle_fraction", "cortical_thickness_mm", "temporal_gm_fraction")}
    assert np.all(np.diff(mean["brain_fraction"]) < 0)
    assert np.all(np.diff(mean["ventricle_fraction"]) > 0)
    assert np.all(np.diff(mean["cortical_thickness_mm"]) < 0)
    assert np.all(np.diff(mean["temporal_gm_fraction"]) < 0)
    # The effect is large from healthy to moderate: ventricles at least 1.5x, brain area down > 3 %.
    assert mean["ventricle_fraction"][3] > 1.5 * mean["ventricle_fraction"][0]
    assert mean["brain_fraction"][3] < 0.97 * mean["brain_fraction"][0]


def test_tumour_sizes_and_positions(tmp_path):
    out = make_cohort("tumor", 8, 32, 2, 1, tmp_path / "t", balance="equal")
    rows = _rows(out)
    yes = [r for r in rows if r["class"] == "yes"]
    no = [r for r in rows if r["class"] == "no"]
    assert len(yes) == len(no) == 4
    assert all(float(r["tumour_fraction"]) > 0 and float(r["tumour_radius_mm"]) >= 7 for r in yes)
    assert all(0 < float(r["tumour_x"]) < 1 and 0 < float(r["tumour_y"]) < 1 for r in yes)
    assert all(float(r["tumour_fraction"]) == 0 and r["tumour_x"] == "" for r in no)
    assert {r["contrast"] for r in rows} <= {"t1", "t2"}


def test_tumour_changes_the_image_where_it_says():
    p = sample_params("tumor", "yes", 1, dims=2, size=64, seed=11, contrast="t2")
    img, truth = render_subject(p)
    healthy, _ = render_subject(sample_params("tumor", "no", 0, dims=2, size=64, seed=11, contrast="t2"))
    row, col = int(truth["tumour_y"] * 64), int(truth["tumour_x"] * 64)
    diff = np.abs(img.astype(int) - healthy.astype(int))
    near = diff[max(row - 3, 0):row + 4, max(col - 3, 0):col + 4].mean()
    assert near > 3 * diff.mean()                     # the lesion is where the ground truth puts it


def test_balance_option():
    # 16 * (.4999, .3499, .1400, .0102) = (8.00, 5.60, 2.24, 0.16) -> 8, 6, 2, 0; the rare class is lifted
    # to 2 from the classes most above their share (6 > 5.6, then 8 > 8.0).
    assert class_counts(16, "alzheimer", "imbalanced").tolist() == [7, 5, 2, 2]
    assert class_counts(1000, "alzheimer", "equal").tolist() == [250] * 4
    assert class_counts(103, "tumor", "equal").sum() == 103
    assert class_counts(5121, "alzheimer", "imbalanced").tolist() == [2560, 1792, 717, 52]   # Kaggle
    assert class_counts(20, "alzheimer", "4:3:2:1").tolist() == [8, 6, 4, 2]
    with pytest.raises(MedfabError, match="2 ratios"):
        class_counts(20, "alzheimer", "1:2")
    with pytest.raises(MedfabError, match="too small"):
        class_counts(3, "tumor", "equal")


def test_3d_volumes_are_valid_nifti(tmp_path):
    import nibabel as nib

    out = make_cohort("tumor", 4, 16, 3, 0, tmp_path / "v", balance="equal")
    again = make_cohort("tumor", 4, 16, 3, 0, tmp_path / "w", balance="equal")
    assert _files(out) == _files(again)               # gzip header has no timestamp
    rows = _rows(out)
    for r in rows:
        img = nib.load(out / r["file"])
        assert img.shape == (16, 16, 16) and img.get_data_dtype() == np.uint8
        assert np.allclose(np.diag(img.affine)[:3], 210 / 16)
        assert np.asarray(img.dataobj).max() > 100
        assert float(r["brain_volume_ml"]) > 800      # an adult brain, ~1,100-1,500 ml
        assert (r["tumour_z"] != "") == (r["class"] == "yes")


def test_refuses_non_empty_out(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(MedfabError, match="not an empty folder"):
        make_cohort("alzheimer", 8, 32, 2, 0, out)
    assert (out / "keep.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_cohort("alzheimer", 8, 16, 2, 0, empty) == empty     # an empty folder is fine


def test_cli_reports_errors_clearly(tmp_path):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    r = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "x"), "--n", "8"])
    assert r.exit_code == 2 and "not an empty folder" in r.output
    r = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "y"), "--n", "8", "--size", "16",
                                 "--task", "tumor", "--contrast", "t2"])
    assert r.exit_code == 0, r.output
    assert {row["contrast"] for row in _rows(tmp_path / "y")} == {"t2"}
    r = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "z"), "--dims", "4"])
    assert r.exit_code == 2 and "dims" in r.output


def test_3d_tissue_segmentation_aligns_with_the_image(tmp_path):
    """OUT/.seg/<id>_seg.nii.gz: same grid and affine as the image, labels where the rendered anatomy is."""
    import nibabel as nib

    from medfab.phantom.cohort import SEG_DIR
    from medfab.phantom.render import render_subject_with_labels

    out = make_cohort("alzheimer", 8, 24, 3, 5, tmp_path / "v", balance="equal")
    again = make_cohort("alzheimer", 8, 24, 3, 5, tmp_path / "w", balance="equal")
    segs = sorted((out / SEG_DIR).iterdir())
    assert len(segs) == 8 and all(p.read_bytes() == (again / SEG_DIR / p.name).read_bytes() for p in segs)
    for c in CLASSES["alzheimer"]:                    # class folders hold images only
        assert all(not p.name.endswith("_seg.nii.gz") for p in (out / c).iterdir())
    for r in _rows(out):
        img = nib.load(out / r["file"])
        seg = nib.load(out / SEG_DIR / f"{r['id']}_seg.nii.gz")
        assert seg.shape == img.shape and np.array_equal(seg.affine, img.affine)
        assert seg.get_data_dtype() == np.uint8 and b"phantom" in bytes(seg.header["descrip"])
        lab, x = np.asarray(seg.dataobj), np.asarray(img.dataobj).astype(float)
        assert set(np.unique(lab)) == {0, 1, 2, 3}
        vox_ml = float(np.prod(seg.header.get_zooms())) / 1000
        assert (lab > 0).sum() * vox_ml == pytest.approx(float(r["brain_volume_ml"]), rel=0.05)
        # T1: white > grey > CSF > background, label by label (the image is rendered from the same fractions)
        means = [x[lab == k].mean() for k in range(4)]
        assert means[3] > means[2] > means[1] > means[0]

    # the labels are the renderer's own (before noise), voxel for voxel
    p = sample_params("tumor", "yes", 1, dims=3, size=24, seed=3, contrast="t1")
    img, _truth, lab = render_subject_with_labels(p)
    assert lab.shape == img.shape == (24, 24, 24) and lab.max() <= 3   # tumour voxels keep their tissue
    assert np.array_equal(render_subject(p)[0], img)
    assert (img[lab == 0] == 0).mean() > 0.9                          # background is black around the brain


def test_2d_cohort_has_no_segmentation_folder(tmp_path):
    from medfab.phantom.cohort import SEG_DIR

    out = make_cohort("tumor", 4, 16, 2, 0, tmp_path / "a", balance="equal")
    assert not (out / SEG_DIR).exists()
