"""The deterministic renderer: SubjectParams -> (8-bit image, ground truth). No random draws of its own.

Per pixel: look up the template position (geometry), sample the tissue and distance maps there, move the
disease boundaries by the subject's millimetres, add the lesion, then the scanner (contrast, bias field,
partial-volume blur, Rician noise) and the skull-stripped black background of the public sets.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medfab.phantom.anatomy import load_atlas, sample_maps
from medfab.phantom.geometry import grid_field, head_to_template, mass_effect, output_grid, tumour_distance
from medfab.phantom.params import SubjectParams

SOFT_MM = 0.7         # width of the partial-volume edge of every moved boundary
SHELL_MM = 6.0        # depth of the outer shell in which the cortical-thickness proxy is measured
SULCAL_BASE_MM = 0.8  # the averaged template blurs sulci shut; reopen them a little in every subject


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))          # logistic, without overflow warnings


def _tissues(p: SubjectParams, m: np.ndarray) -> dict[str, np.ndarray]:
    """Fractions (N,) of grey matter, white matter and CSF after the disease effects, plus helpers."""
    gm, wm, csf, d_vent, d_out, d_sulc, temporal = m
    tot = gm + wm + csf
    empty = tot < 0.05
    tot = np.where(empty, 1.0, tot)
    gm, wm = gm / tot, wm / tot
    csf = np.where(empty, 1.0, csf / tot)
    # Sulcal widening: CSF grows into the neighbouring grey matter.
    lost = _sig((SULCAL_BASE_MM + p.sulcal_mm - d_sulc - 1.0) / 0.6) * gm
    # Medial-temporal / hippocampal atrophy: grey matter in the temporal region turns to CSF.
    lost = lost + p.temporal_loss * temporal * (gm - lost)
    gm, csf = gm - lost, csf + lost
    brain = _sig((d_out - p.erosion_mm) / SOFT_MM)           # cortical thinning moves the surface in
    vent = _sig((p.vent_mm - d_vent) / SOFT_MM)              # ventricles enlarge ex vacuo
    keep = brain * (1 - vent)
    shell = _sig(d_out / SOFT_MM) * _sig((SHELL_MM - d_out) / SOFT_MM)
    return {"gm": keep * gm, "wm": keep * wm, "csf": keep * csf + brain * vent, "brain": brain,
            "vent": brain * vent, "temporal": temporal, "shell": shell}


def _lesion(p: SubjectParams, q: np.ndarray, f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Core / enhancing rim / oedema fractions (N,); the tissue fractions in ``f`` give way to them."""
    t = p.tumour
    n = q.shape[1]
    if t is None:
        z = np.zeros(n, dtype=np.float64)
        return {"core": z, "rim": z, "oedema": z}
    r = tumour_distance(t, q) * t.r_rim_mm                   # (N,) mm, irregular outline
    core = _sig((t.r_core_mm - r) / SOFT_MM)
    solid = _sig((t.r_rim_mm - r) / SOFT_MM)
    # Oedema spreads along white matter; it fades over a few mm rather than ending at a sharp edge.
    oedema = (_sig((t.r_oedema_mm - r) / 2.0) - solid).clip(0) * (f["wm"] + 0.4 * f["gm"]).clip(0, 1)
    core, rim = core * f["brain"], (solid - core).clip(0) * f["brain"]
    lesion = core + rim
    for k in ("gm", "wm", "csf"):
        f[k] = f[k] * (1 - lesion) * (1 - oedema)
    f["vent"] = f["vent"] * (1 - lesion)
    return {"core": core, "rim": rim, "oedema": oedema}


def _truth(p: SubjectParams, f: dict, les: dict, shape: tuple[int, ...]) -> dict:
    px_mm = p.fov_mm / p.size
    brain = float(f["brain"].sum())
    safe = max(brain, 1e-6)
    truth = {
        "severity": p.severity,
        "brain_fraction": brain / f["brain"].size,
        ("brain_area_mm2" if p.dims == 2 else "brain_volume_ml"): brain * px_mm**p.dims / (1 if p.dims == 2 else 1000),
        "ventricle_fraction": float(f["vent"].sum()) / safe,
        "temporal_gm_fraction": float((f["gm"] * f["temporal"]).sum() / max(f["temporal"].sum(), 1e-6)),
        "cortical_thickness_mm": SHELL_MM * float((f["gm"] * f["shell"]).sum() / max(f["shell"].sum(), 1e-6)),
    }
    solid = les["core"] + les["rim"]
    truth["tumour_fraction"] = float(solid.sum()) / safe
    truth["oedema_fraction"] = float(les["oedema"].sum()) / safe
    truth["tumour_radius_mm"] = p.tumour.r_rim_mm if p.tumour is not None else 0.0
    pos = [""] * 3
    if solid.sum() > 1e-3:
        idx = np.indices(shape).reshape(len(shape), -1)           # (dims, N)
        centroid = (idx * solid).sum(1) / solid.sum() / p.size    # fractions of the image edge
        if p.dims == 2:   # (row, col) -> x = col, y = row
            pos = [round(float(centroid[1]), 4), round(float(centroid[0]), 4), ""]
        else:
            pos = [round(float(c), 4) for c in centroid]
    truth["tumour_x"], truth["tumour_y"], truth["tumour_z"] = pos
    return truth


def tissue_labels(f: dict[str, np.ndarray]) -> np.ndarray:
    """Hard tissue labels (N,) uint8 from the fractions: 0 background, 1 CSF (incl. ventricles), 2 grey, 3 white.

    Background where less than half a voxel is brain; otherwise the tissue with the largest fraction. Taken
    before the lesion is added, so tumour voxels keep the tissue they displaced: the labels stay 0..3 in every
    cohort (what ``--seg-map identity`` and the 3D evaluation read as a tissue map); the tumour itself is in
    ground_truth.csv.
    """
    tissue = 1 + np.argmax(np.stack([f["csf"], f["gm"], f["wm"]]), axis=0)
    return np.where(f["brain"] >= 0.5, tissue, 0).astype(np.uint8)


def render_subject(p: SubjectParams) -> tuple[np.ndarray, dict]:
    """Render one subject: uint8 image (S, S) [rows anterior->posterior] or (S, S, S) [x, y, z], truth."""
    img, truth, _ = render_subject_with_labels(p)
    return img, truth


def render_subject_with_labels(p: SubjectParams) -> tuple[np.ndarray, dict, np.ndarray]:
    """:func:`render_subject` plus its tissue labels (:func:`tissue_labels`) on the same grid, voxel for voxel."""
    atlas = load_atlas()
    shape = (p.size,) * p.dims
    head = output_grid(p.size, p.dims, p.fov_mm)                     # (3, N) mm
    q = head_to_template(p, head)                                    # (3, N) template mm
    q_tissue = mass_effect(p.tumour, q) if p.tumour is not None else q
    f = _tissues(p, sample_maps(atlas, q_tissue))
    labels = tissue_labels(f).reshape(shape)                        # before _lesion scales the fractions down
    les = _lesion(p, q, f)
    truth = _truth(p, f, les, shape)

    csf_i, gm_i, wm_i = p.tissue
    img = csf_i * f["csf"] + gm_i * f["gm"] + wm_i * f["wm"]
    img = img + p.lesion[0] * les["core"] + p.lesion[1] * les["rim"] + p.lesion[2] * les["oedema"]
    gain = np.exp(p.bias_strength * grid_field(p.bias, p.size, p.dims))   # smooth multiplicative
    img = (img * gain).reshape(shape)
    img = ndi.gaussian_filter(img, p.blur_px)                       # partial-volume blur
    # Rician noise: the magnitude of a complex signal with Gaussian noise in both channels.
    rng = np.random.default_rng(p.noise_seed)
    noisy = np.hypot(img + rng.normal(0, p.noise_sigma, shape), rng.normal(0, p.noise_sigma, shape))
    # Skull-stripped: the public sets have an exactly black background around a soft brain edge.
    support = np.clip((ndi.gaussian_filter(f["brain"].reshape(shape), p.blur_px) - 0.1) / 0.4, 0, 1)
    img = noisy * support
    inside = img[support > 0.5]
    top = float(np.percentile(inside, 99.5)) if inside.size else 1.0
    img8 = np.clip(np.rint(img * (245.0 / max(top, 1e-6))), 0, 255).astype(np.uint8)
    return img8, truth, labels
