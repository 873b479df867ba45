"""Write a labelled phantom cohort in the folder layout users have: OUT/<Class>/<id>.png|.nii.gz.

Plus ``ground_truth.csv`` (one row per image: what the renderer knows) and ``phantom.json`` (the config).
3D cohorts also get one tissue segmentation per volume, ``OUT/.seg/<id>_seg.nii.gz`` (0 background, 1 CSF,
2 grey, 3 white matter; the image's grid and affine). The folder is hidden so that every reader of
OUT/<class>/ still sees images only, and flat so that ``medfab train --with-seg OUT/.seg --seg-map identity``
matches it by file name.
Subject i draws from its own seed (cohort seed, i), so the bytes do not depend on ``workers``.
The cohort is written into a hidden sibling folder and renamed to OUT at the end: a crash or Ctrl-C never
leaves a half-written data set under the name the user asked for.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from medfab.errors import MedfabError
from medfab.phantom.config import PhantomConfig, class_counts
from medfab.phantom.params import sample_params, subject_seed
from medfab.phantom.render import render_subject_with_labels

SEG_DIR = ".seg"          # OUT/.seg/<id>_seg.nii.gz (3D only); hidden: class folders and readers see images only
SEG_DESCRIP = b"medfab phantom SYNTHETIC tissue labels: 0 bg 1 csf 2 gm 3 wm"

# Column order of ground_truth.csv (truth keys from render._truth, then acquisition parameters).
COLUMNS = [
    "id", "file", "class", "label", "seed", "severity",
    "brain_fraction", "brain_area_mm2", "brain_volume_ml", "ventricle_fraction", "temporal_gm_fraction",
    "cortical_thickness_mm", "tumour_fraction", "oedema_fraction", "tumour_radius_mm",
    "tumour_x", "tumour_y", "tumour_z",
    "contrast", "bias_strength", "noise_sigma", "blur_px", "slice_offset_mm", "deformation_mm", "scale",
    "rotation_deg",
]


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")      # uint8 (H, W) -> 8-bit grey "L"
    return buf.getvalue()


def _nifti_bytes(img: np.ndarray, fov_mm: float, descrip: bytes | None = None) -> bytes:
    """gzip-compressed NIfTI-1 with an RAS affine; mtime=0 in the gzip header keeps bytes reproducible."""
    import nibabel as nib

    size = img.shape[0]
    vox = fov_mm / size
    affine = np.diag([vox, vox, vox, 1.0])
    affine[:3, 3] = -fov_mm / 2 + vox / 2          # voxel centres symmetric about the origin
    nii = nib.Nifti1Image(img, affine)
    nii.header.set_xyzt_units("mm")
    if descrip is not None:
        nii.header["descrip"] = descrip
    return gzip.compress(nii.to_bytes(), compresslevel=6, mtime=0)


def _fmt(v) -> str | int:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, np.ndarray):
        return " ".join(f"{x:.4g}" for x in v)
    return v


def _one(job: tuple[PhantomConfig, int, int, str]) -> dict:
    """Render and write subject ``i``; returns its ground-truth row. Runs in a worker process too."""
    cfg, i, k, tmp = job
    label = cfg.classes[k]
    p = sample_params(cfg.task, label, k, dims=cfg.dims, size=cfg.size, seed=subject_seed(cfg.seed, i),
                      contrast=cfg.resolved_contrast)
    img, truth, tissue = render_subject_with_labels(p)
    sid = f"{cfg.task}-{cfg.seed}-{i:05d}"
    rel = f"{label}/{sid}" + (".png" if cfg.dims == 2 else ".nii.gz")
    data = _png_bytes(img) if cfg.dims == 2 else _nifti_bytes(img, p.fov_mm)
    (Path(tmp) / rel).write_bytes(data)
    if cfg.dims == 3:     # same grid and affine as the image: aligned voxel for voxel
        (Path(tmp) / SEG_DIR / f"{sid}_seg.nii.gz").write_bytes(_nifti_bytes(tissue, p.fov_mm, SEG_DESCRIP))
    row = {"id": sid, "file": rel, "class": label, "label": k, "seed": p.seed, **truth,
           "contrast": p.contrast, "bias_strength": p.bias_strength, "noise_sigma": p.noise_sigma,
           "blur_px": p.blur_px, "slice_offset_mm": p.slice_offset_mm, "deformation_mm": p.deformation_mm,
           "scale": p.scale, "rotation_deg": p.rotation_deg}
    return {c: _fmt(row.get(c, "")) for c in COLUMNS}


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedfabError(
            f"--out {out} already exists and is not an empty folder",
            "choose a new folder name, or delete the old cohort first; medfab never overwrites data",
        )


def make_cohort(task: str, n: int, size: int, dims: int, seed: int, out: str | Path, *,
                balance: str = "imbalanced", contrast: str | None = None, workers: int = 1,
                progress: bool = False) -> Path:
    """Fabricate ``n`` labelled phantom images into ``out``; returns ``out``.

    task: "alzheimer" (4 stages, Kaggle folder names) or "tumor" (Br35H ``no`` / ``yes``).
    balance: "imbalanced" (the public set's proportions), "equal", or ratios "a:b:c:d" in class order.
    contrast: "t1" | "t2" | "mixed" (per subject); None = task default.
    """
    try:
        cfg = PhantomConfig(task=task, n=n, size=size, dims=dims, seed=seed, balance=balance,
                            contrast=contrast, workers=workers)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise MedfabError(f"invalid phantom option {field}: {err['msg']}",
                          "see `medfab phantom --help` for the allowed values") from None
    out = Path(out)
    _check_out(out)
    counts = class_counts(cfg.n, cfg.task, cfg.balance)
    # Shuffle the labels so that ids carry no class information (id order = subject order).
    labels = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2**31])).permutation(
        np.repeat(np.arange(len(counts)), counts))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for c in cfg.classes:
            (tmp / c).mkdir(parents=True)
        if cfg.dims == 3:
            (tmp / SEG_DIR).mkdir()
        jobs = [(cfg, i, int(k), str(tmp)) for i, k in enumerate(labels)]
        rows = _run(jobs, cfg.workers, progress)
        with open(tmp / "ground_truth.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        meta = {
            "command": _command(cfg, out),
            "config": cfg.model_dump(),
            "classes": cfg.classes,
            "counts": {c: int(m) for c, m in zip(cfg.classes, counts)},
            "contrast": cfg.resolved_contrast,
            "layout": "OUT/<class>/<id>." + ("png (8-bit grey, axial, anterior up)" if cfg.dims == 2
                                             else "nii.gz (uint8, RAS, mm)"),
            "template": "MNI152 2009 (nilearn bundled), 2 mm",
            **({"segmentation": {
                "layout": f"OUT/{SEG_DIR}/<id>_seg.nii.gz (uint8, the image's grid and affine)",
                "labels": {"0": "background", "1": "csf (incl. ventricles)", "2": "grey_matter",
                           "3": "white_matter"},
                "tumour": "tumour voxels keep the tissue they displaced (the tumour is in ground_truth.csv)",
                "train": f"medfab train --with-seg OUT/{SEG_DIR} --seg-map identity",
            }} if cfg.dims == 3 else {}),
            "generator": "medfab.phantom " + _version(),
        }
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=2) + "\n")
        _check_out(out)                      # someone may have written there meanwhile
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _run(jobs: list, workers: int, progress: bool) -> list[dict]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="phantom", unit="img")
    rows = []
    if workers <= 1:
        for job in jobs:
            rows.append(_one(job))
            if bar:
                bar.update()
    else:
        from medfab.phantom.anatomy import load_atlas

        load_atlas()       # build / cache once before the workers start, not once per worker
        with ProcessPoolExecutor(workers) as ex:
            for row in ex.map(_one, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers)))):
                rows.append(row)   # map keeps submission order: output independent of scheduling
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return rows


def _command(cfg: PhantomConfig, out: Path) -> str:
    parts = [f"medfab phantom --task {cfg.task} --n {cfg.n} --size {cfg.size} --dims {cfg.dims}",
             f"--seed {cfg.seed} --balance {cfg.balance}"]
    if cfg.contrast:
        parts.append(f"--contrast {cfg.contrast}")
    return " ".join(parts) + f" --out {out}"


def _version() -> str:
    from medfab import __version__

    return __version__
