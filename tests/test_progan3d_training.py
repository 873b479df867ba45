"""progan3d in the one training loop: exact resume across a growth stage change, micro-batches, the CLI with --with-seg."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch
from tiny_model import tiny_data

from medfab.models.registry import build_model
from medfab.training import checkpoint as ckpt
from medfab.training.loop import fit

# 8^3 volumes, levels 4^3 -> 8^3: level 1 fades in from 8 images (step 2 of batch 4) to 16 (step 4).
TINY = {"image_size": 8, "start_size": 4, "fmap_base": 32, "fmap_max": 8, "z_dim": 4, "fade_kimg": 0.008, "stable_kimg": 0.008,
            "batch_size": 4, "report_memory": False}
QUIET = {"progress": False, "config": {}, "grid_every": 1000.0, "log_every": 1}


def _model(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model("progan3d", num_classes=1, channels=1, spatial_dims=3, **{**TINY, **kw})[0]


def _state(m) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_resume_across_a_stage_change_is_exact(tmp_path):
    torch.set_num_threads(1)
    data = tiny_data(counts=(6,), size=8, spatial_dims=3)
    ref = _model()
    fit(ref, data, out=tmp_path / "ref", kimg=0.024, **QUIET)                  # 6 steps: 4^3, fade, 8^3
    assert ref.stage.level == 1 and ref.stage.alpha == 1.0

    # Stopped just before level 1 starts fading (8 images), resumed by a differently initialised model.
    fit(_model(), data, out=tmp_path / "run", kimg=0.008, **QUIET)
    assert ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path / "run"))["nimg"] == 8
    again = _model(seed=123)
    fit(again, data, out=tmp_path / "run", kimg=0.024, **QUIET)
    a, b = _state(ref), _state(again)
    assert a.keys() == b.keys() and "G_ema.to_rgb.1.weight" in a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    rows = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 6 and "NaN" not in "".join(rows)


def test_micro_batches_and_checkpointing_train(tmp_path):
    data = tiny_data(counts=(4,), size=8, spatial_dims=3)
    m = _model(grad_checkpoint=True)
    fit(m, data, out=tmp_path / "run", kimg=0.012, batch_gpu=2, **QUIET)
    loaded, cfg = ckpt.load_run(tmp_path / "run")
    assert int(loaded.nimg) == 8 and cfg["training"]["batch_gpu"] == 2
    x = loaded.generate(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8, 8) and torch.isfinite(x).all()


def _volumes(root, n: int, with_seg: bool):
    """n tiny PSR-oriented 12 x 12 x 9 volumes (+ DLMUSE-like segmentations) in root/t1 and root/seg."""
    rng = np.random.default_rng(0)
    affine = np.array([[0.0, 0, 2, -88], [-2, 0, 0, 118], [0, 2, 0, -135], [0, 0, 0, 1]])
    (root / "t1").mkdir(parents=True)
    (root / "seg").mkdir()
    for i in range(n):
        img = nib.Nifti1Image(rng.integers(0, 255, (12, 12, 9)).astype(np.uint8), affine)
        img.header.set_slope_inter(13.9, 0)
        nib.save(img, str(root / "t1" / f"IXI{i:03d}_T1.nii.gz"))
        if with_seg:
            lab = rng.choice([0, 51, 120, 85, 35], size=(12, 12, 9)).astype(np.uint8)
            nib.save(nib.Nifti1Image(lab, affine), str(root / "seg" / f"IXI{i:03d}_T1_DLMUSE.nii.gz"))


def test_cli_trains_and_samples_image_and_segmentation_pairs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    monkeypatch.setenv("MEDFAB_CACHE", str(tmp_path / "cache"))
    _volumes(tmp_path, 4, with_seg=True)
    run = tmp_path / "run"
    sets = [x for kv in ("fmap_base=32", "fmap_max=8", "z_dim=4", "fade_kimg=0.004", "stable_kimg=0.004",
                         "batch_size=4", "grid_every=1000") for x in ("--set", kv)]
    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "t1"), "--model", "progan3d", "--size", "8",
                                 "--dims", "3", "--kimg", "0.008", "--with-seg", str(tmp_path / "seg"),
                                 "--out", str(run), "--no-progress", *sets])
    assert r.exit_code == 0, r.output
    cfg = ckpt.read_run_config(run)
    assert cfg["model"]["channels"] == 5 and cfg["data"]["counts"] == {"t1": 4}
    assert cfg["segmentation"]["classes"][:2] == ["background", "csf"] and cfg["volume"]["spacing_mm"] == [3.0] * 3
    assert cfg["preprocess"]["normalise"] == "percentile"          # by a recorded rule, not the stored uint8

    r = CliRunner().invoke(app, ["sample", "--run", str(run), "--n-per-class", "2", "--out", str(tmp_path / "syn"),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    import csv

    with open(tmp_path / "syn" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["seg"] for r in rows] == [r["file"].replace(".nii.gz", "_seg.nii.gz") for r in rows] and len(rows) == 2
    img = nib.load(str(tmp_path / "syn" / rows[0]["file"]))
    seg = nib.load(str(tmp_path / "syn" / rows[0]["seg"]))
    assert img.shape == seg.shape == (8, 8, 8)
    assert np.allclose(seg.affine, cfg["volume"]["affine"]) and np.allclose(img.affine, seg.affine)
    assert np.asarray(seg.dataobj).dtype == np.uint8 and np.asarray(seg.dataobj).max() <= 3
    assert b"SYNTHETIC" in bytes(img.header["descrip"]) and b"SYNTHETIC" in bytes(seg.header["descrip"])

    bad = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "t1"), "--model", "progan3d", "--size", "8",
                                   "--kimg", "0.004", "--with-seg", str(tmp_path), "--out", str(tmp_path / "r2"),
                                   "--no-progress"])
    assert bad.exit_code == 2 and "no unique segmentation" in bad.output


def test_trains_on_the_phantoms_own_tissue_masks(tmp_path, monkeypatch):
    """The 3D demo's path at tiny sizes: phantom volumes + OUT/.seg, --seg-map identity, samples with _seg."""
    import csv

    from typer.testing import CliRunner

    from medfab.cli.main import app
    from medfab.demo import _segs_beside
    from medfab.phantom import make_cohort
    from medfab.phantom.cohort import SEG_DIR

    ph = make_cohort("tumor", 4, 16, 3, 0, tmp_path / "ph", balance="equal")
    run = tmp_path / "run"
    sets = [x for kv in ("fmap_base=32", "fmap_max=8", "z_dim=4", "fade_kimg=0.004", "stable_kimg=0.004",
                         "batch_size=4", "grid_every=1000") for x in ("--set", kv)]
    r = CliRunner().invoke(app, ["train", "--data", str(ph), "--model", "progan3d", "--size", "8", "--dims", "3",
                                 "--kimg", "0.008", "--with-seg", str(ph / SEG_DIR), "--seg-map", "identity",
                                 "--out", str(run), "--no-progress", *sets])
    assert r.exit_code == 0, r.output
    cfg = ckpt.read_run_config(run)
    assert cfg["model"]["channels"] == 5 and cfg["data"]["counts"] == {"no": 2, "yes": 2}
    assert cfg["segmentation"]["map"] == "identity" and len(cfg["segmentation"]["classes"]) == 4
    r = CliRunner().invoke(app, ["sample", "--run", str(run), "--n-per-class", "1", "--out", str(tmp_path / "syn"),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "syn" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all((tmp_path / "syn" / row["seg"]).is_file() for row in rows)
    seg = np.asarray(nib.load(str(tmp_path / "syn" / rows[0]["seg"])).dataobj)
    assert seg.shape == (8, 8, 8) and seg.max() <= 3

    _segs_beside(ph, ph / SEG_DIR)           # the demo's step before the 3D evaluation
    images = sorted((ph / "yes").glob("*[0-9].nii.gz"))
    assert len(images) == 2
    for img in images:
        beside = img.with_name(img.name.replace(".nii.gz", "_seg.nii.gz"))
        assert beside.read_bytes() == (ph / SEG_DIR / beside.name).read_bytes()
