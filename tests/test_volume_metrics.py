"""The 3D volume metrics against hand-computed values, and `medfab evaluate` + `report` on tiny NIfTI folders."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medfab.cli.main import app
from medfab.errors import MedfabError
from medfab.evaluation.diversity import msssim_batch
from medfab.evaluation.volumes import metrics as M
from medfab.evaluation.volumes import tissues as T
from medfab.evaluation.volumes.io import list_volumes, load_volumes, seg_path
from medfab.evaluation.volumes.msssim import msssim_3d, msssim_pairs_3d


def sphere(n: int = 20, r: float = 5.0, centre=None) -> tuple[np.ndarray, int]:
    """(1, 1, n, n, n) volume: a bright ball of radius r on a -1 background, and its voxel count."""
    c = np.full(3, n // 2) if centre is None else np.asarray(centre, dtype=float)
    g = np.indices((n, n, n)).astype(float)
    ball = ((g - c[:, None, None, None]) ** 2).sum(0) <= r * r
    return np.where(ball, 0.6, -1.0).astype(np.float32)[None, None], int(ball.sum())


def test_brain_volume_of_a_sphere_is_its_voxel_count():
    x, count = sphere(21, 5.0)
    assert count == 515  # lattice points with i² + j² + k² <= 25 (a ball of radius 5 on a voxel centre)
    assert M.brain_fraction(x)[0] == pytest.approx(515 / 21**3)
    assert M.brain_mask(np.concatenate([x, x])).sum() == count


def test_constant_volumes_have_zero_voxel_variance():
    x = np.stack([np.full((1, 8, 8, 8), v, np.float32) for v in (0.25, 0.25)])
    assert np.array_equal(M.voxel_variance(x), np.zeros((8, 8, 8)))
    two = np.stack([np.full((1, 4, 4, 4), v, np.float32) for v in (0.0, 1.0)])
    assert np.allclose(M.voxel_variance(two), 0.5)  # unbiased variance of {0, 1}
    with pytest.raises(MedfabError, match="at least 2 volumes"):
        M.voxel_variance(two[:1])


def test_identical_sets_give_msssim_one_and_ks_zero():
    x, _ = sphere(16, 4.0)
    same = np.repeat(x, 4, axis=0)
    assert msssim_pairs_3d(same, n_pairs=6, seed=0)["mean"] == pytest.approx(1.0, abs=1e-5)
    v = np.array([0.1, 0.2, 0.3, 0.4])
    d = M.ks_vs_baseline(v, v, v)
    assert d["ks"] == 0.0 and d["ks_baseline"] == 0.0 and d["synth_mean"] == pytest.approx(0.25)
    # shifted entirely: KS 1 (no overlap)
    assert M.ks_vs_baseline(v, v + 1, v)["ks"] == 1.0


def test_separable_msssim_equals_torchmetrics():
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (3, 1, 24, 24, 24)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.4, a.shape), -1, 1).astype(np.float32)
    b[2] = rng.uniform(-1, 1, b[2].shape)  # an unrelated pair too
    ours, ref = msssim_3d(a, b), msssim_batch(a, b)  # ref: torchmetrics with the full 11³ window, 2 scales
    assert np.allclose(ours, ref, atol=1e-5) and ref[0] > ref[2]


def test_a_copied_training_volume_is_flagged():
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (6, 1, 8, 8, 8)).astype(np.float32)
    holdout = rng.uniform(-1, 1, (4, 1, 8, 8, 8)).astype(np.float32)
    synth = np.concatenate([rng.uniform(-1, 1, (3, 1, 8, 8, 8)), train[2:3]]).astype(np.float32)
    r = M.nearest_training(train, holdout, synth)
    assert r["flagged"] == [3] and r["min_synth"] == pytest.approx(0.0, abs=1e-6)
    assert r["synth_nn_index"][3] == 2 and r["min_holdout"] > 0.3
    # new real volumes would be flagged by chance: 1 of 4 against 4 held-out has probability 4 / 8
    assert r["p_chance"] == pytest.approx(0.5) and r["expected_by_chance"] == pytest.approx(4 / 5)
    copies = M.nearest_training(train, holdout, train[:4])
    assert copies["flagged"] == [0, 1, 2, 3] and copies["p_chance"] == pytest.approx(
        4 / 8 * 3 / 7 * 2 / 6 * 1 / 5
    )
    assert M.nearest_training(train, None, synth)["flagged"] is None  # no held-out reference


def test_tissue_counts_from_a_tissue_map_and_a_dlmuse_parcellation():
    tissue_map = np.array([0, 1, 1, 2, 2, 2, 3, 0])
    assert T.tissue_counts(tissue_map).tolist() == [2.0, 3.0, 1.0]
    dlmuse = np.array([0, 51, 52, 4, 100, 207, 36, 81, 95, 35, 1])  # 1: unmapped (not a single ROI)
    assert T.tissue_counts(dlmuse).tolist() == [3.0, 3.0, 3.0]
    assert T.shares([[1, 3, 0], [0, 0, 0]]).tolist() == [[0.25, 0.75, 0.0], [0.0, 0.0, 0.0]]
    every = {i for ids in T.DLMUSE_TISSUES.values() for i in ids}
    assert sum(len(ids) for ids in T.DLMUSE_TISSUES.values()) == len(every)  # each ROI in one tissue


def test_seg_volumes_csv(tmp_path):
    ids = sorted({i for v in T.DLMUSE_TISSUES.values() for i in v})
    rows = [["MRID", "702", *map(str, ids)]]
    for s, scale in (("S1", 1.0), ("S2", 2.0)):
        rows.append([s, "9999", *[str(scale * (10 if i in (51, 52) else 1)) for i in ids]])
    p = tmp_path / "seg_volumes.csv"
    p.write_text("\n".join(",".join(r) for r in rows))
    subjects, counts = T.read_seg_volumes(p)
    assert subjects == ["S1", "S2"] and counts.shape == (2, 3)
    assert counts[0, 0] == 10 + 10 + 4  # 51, 52 at 10 mm³, 4, 11, 49, 50 at 1
    assert np.allclose(T.shares(counts)[0], T.shares(counts)[1])  # shares do not depend on head size
    with pytest.raises(MedfabError, match="does not exist"):
        T.read_seg_volumes(tmp_path / "nope.csv")


def write_brains(folder, n: int, seed: int, *, collapse: bool = False, size: int = 20):
    """Tiny T1-like volumes (ellipsoid, white matter, ventricles) with a ``<stem>_seg`` tissue map beside each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    g = np.indices((size,) * 3).astype(float) - (size - 1) / 2
    for i in range(n):
        ax = np.array([1, 0.85, 0.75]) * (1 if collapse else rng.uniform(0.85, 1.15, 3))
        d = np.sqrt(((g / ax[:, None, None, None]) ** 2).sum(0)) / (0.4 * size)
        vent = d < (0.25 if collapse else rng.uniform(0.15, 0.35))
        wm = (d < 0.7) & ~vent
        img = np.where(d < 1, 150, 5) + 60 * wm - 120 * vent + rng.normal(0, 2 if collapse else 10, d.shape)
        seg = np.where(vent, 1, np.where(wm, 3, np.where(d < 1, 2, 0)))
        nib.save(
            nib.Nifti1Image(np.clip(img, 0, 255).astype(np.uint8), np.eye(4)), folder / f"b{i:02d}.nii.gz"
        )
        nib.save(nib.Nifti1Image(seg.astype(np.uint8), np.eye(4)), folder / f"b{i:02d}_seg.nii.gz")
    return folder


def test_volume_folders_pair_images_with_segmentations(tmp_path):
    d = write_brains(tmp_path / "v", 3, 0)
    files = list_volumes(d)
    assert [p.name for p in files] == ["b00.nii.gz", "b01.nii.gz", "b02.nii.gz"]  # _seg files are not images
    assert seg_path(files[0]).name == "b00_seg.nii.gz"
    vs = load_volumes(d, 16)
    assert vs.x.shape == (3, 1, 16, 16, 16) and vs.x.min() >= -1 and vs.x.max() <= 1
    assert vs.tissue.shape == (3, 3) and (vs.tissue > 0).all()
    (d / "b00_seg.nii.gz").unlink()
    assert load_volumes(d, 16).tissue is None  # not every volume has a segmentation: no tissue volumes


@pytest.fixture(scope="module")
def eval3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("vol")
    tr, te = write_brains(root / "train", 10, 0), write_brains(root / "test", 4, 1)
    collapsed = write_brains(root / "synth", 6, 2, collapse=True)
    out = root / "eval"
    r = CliRunner().invoke(
        app,
        ["evaluate", "--real-train", str(tr), "--real-test", str(te), "--synthetic", str(collapsed),
         "--out", str(out), "--size", "16", "--quick"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def test_evaluate_detects_volumes_and_flags_collapse(eval3d):
    res = json.loads((eval3d / "results.json").read_text())
    assert res["schema_version"] == 2 and list(res["families"]) == ["volumes"]
    fam = res["families"]["volumes"]
    assert fam["status"] == "ok", fam
    d = fam["data"]
    assert d["family"] == "volumes" and json.loads((eval3d / "eval_config.json").read_text())["dims"] == 3
    assert d["voxel_variance"]["ratio"] < 0.5  # near-identical synthetic brains
    assert d["msssim"]["synth"]["mean"] > d["msssim"]["real"]["mean"]
    assert set(d["tissues"]) == set(T.TISSUES) and d["privacy"]["flagged"] is not None
    for f in fam["figures"] + res["samples"]:
        assert (eval3d / f["file"]).is_file()


def test_report_has_a_3d_section(eval3d, tmp_path):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(app, ["report", str(eval3d), "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "Volumes: are the 3D brains real" in text and "Goals of the 3D study" in text
    assert "mode collapse" in text and "3D volumes at 16³" in text
    assert html.count("data:image/png;base64,") >= 6  # slices, montage, variance maps, distributions...


def test_3d_input_errors(tmp_path):
    d = write_brains(tmp_path / "one", 1, 0)
    with pytest.raises(MedfabError, match="holds 1 volume"):
        load_volumes(d, 16, min_n=2)
    with pytest.raises(MedfabError, match="no NIfTI volumes"):
        list_volumes(_empty(tmp_path))


def _empty(tmp_path):
    p = tmp_path / "empty"
    p.mkdir()
    return p


def test_2d_needs_real_test_and_3d_needs_volumes(tmp_path):
    args = [
        "evaluate",
        "--real-train",
        str(tmp_path),
        "--synthetic",
        str(tmp_path),
        "--out",
        str(tmp_path / "e"),
    ]
    r = CliRunner().invoke(app, args)  # an empty folder is not a volume folder: a 2D evaluation
    assert r.exit_code == 2 and "--real-test is missing" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*args, "--dims", "3"])
    assert r.exit_code == 2 and "no NIfTI volumes" in " ".join(r.output.split())
