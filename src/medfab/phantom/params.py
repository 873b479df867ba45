"""Per-subject random parameters, drawn first from a seeded generator (torchio's habit).

``sample_params`` is the only place that draws random numbers for anatomy, disease and scanner; the
renderer (:mod:`medfab.phantom.render`) is a deterministic function of the :class:`SubjectParams` it gets,
so a subject can be logged, re-rendered and varied one parameter at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfab.phantom.anatomy import load_atlas, sample_maps

DEFORM_GRID = 6      # control points per axis of the smooth anatomical deformation
BIAS_GRID = 3        # control points per axis of the multiplicative bias field
FOV_MM = 210.0       # field of view: the brain (~140 x 172 mm axially) fills ~80 % of the image height

# Alzheimer stage -> mean severity; the within-class spread makes neighbouring stages overlap so that a
# classifier finds the task hard but learnable (tuned with bench/bench_phantom_difficulty.py).
STAGE_SEVERITY = (0.0, 0.35, 0.7, 1.05)
SEVERITY_SPREAD = 0.17
# Millimetres / fractions of change at severity 1.
VENT_MM, EROSION_MM, SULCAL_MM, TEMPORAL_LOSS = 5.0, 1.6, 1.6, 0.45

# Tissue intensities (relative to white matter in T1) per contrast: (csf, gm, wm).
TISSUE = {"t1": (0.08, 0.45, 0.88), "t2": (0.95, 0.55, 0.36)}
# Lesion intensities: (necrotic core, enhancing rim, oedema); T1 is post-contrast (bright rim).
LESION = {"t1": (0.14, 0.97, 0.62), "t2": (0.92, 0.62, 0.80)}


@dataclass(frozen=True)
class TumourParams:
    centre_mm: np.ndarray      # (3,) template (MNI) millimetres
    r_core_mm: float           # necrotic core radius
    r_rim_mm: float            # outer radius of the enhancing rim (the tumour size)
    r_oedema_mm: float         # outer radius of the peritumoral oedema
    mass_effect: float         # 0..0.6: how strongly surrounding tissue is pushed away
    shape: np.ndarray          # (4, 4, 4) smooth radius modulation in [-1, 1] (irregular outline)


@dataclass(frozen=True)
class SubjectParams:
    task: str
    label: str                 # class folder name
    label_index: int
    dims: int                  # 2 or 3
    size: int                  # output edge length (pixels / voxels)
    seed: int                  # the subject's own seed (recorded in the ground truth)
    severity: float            # disease stage on a continuous scale (0 = template anatomy)
    vent_mm: float             # ventricle boundary moved outwards by this (negative: smaller ventricles)
    erosion_mm: float          # outer brain surface moved inwards (cortical thinning)
    sulcal_mm: float           # sulcal CSF grown into grey matter
    temporal_loss: float       # fraction of medial/lateral temporal grey matter lost
    scale: np.ndarray          # (3,) head size per axis
    rotation_deg: np.ndarray   # (2,) yaw (in-plane) and pitch
    slice_offset_mm: float     # axial position jitter (2D: slice level; 3D: field-of-view shift)
    deformation_mm: float      # RMS of the smooth displacement field
    displacement: np.ndarray   # (3, G, G, G) control-point displacements in mm
    contrast: str              # "t1" | "t2"
    tissue: np.ndarray         # (3,) csf, gm, wm intensities after jitter
    lesion: np.ndarray         # (3,) core, rim, oedema intensities after jitter
    tumour: TumourParams | None
    bias_strength: float       # max |log gain| of the bias field
    bias: np.ndarray           # (B, B, B) control values in [-1, 1]
    blur_px: float             # partial-volume blur (Gaussian sigma, pixels)
    noise_sigma: float         # Rician noise sigma relative to white matter intensity in T1
    noise_seed: int            # seed of the pixel noise realisation

    @property
    def fov_mm(self) -> float:
        return FOV_MM


def subject_seed(seed: int, index: int) -> int:
    """Independent seed for subject ``index`` of a cohort with ``seed`` (order- and worker-independent)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def _tumour(rng: np.random.Generator, dims: int, z_plane: float) -> TumourParams:
    """Random lesion inside the brain; in 2D its centre lies near the slice so that it is visible."""
    atlas = load_atlas()
    d_out = atlas.channel("d_out")
    r_rim = float(rng.uniform(7.0, 22.0))
    lo, hi = atlas.brain_lo_mm, atlas.brain_hi_mm
    for _ in range(200):
        c = rng.uniform(lo, hi)
        if dims == 2:
            c[2] = z_plane + rng.uniform(-0.3, 0.3) * r_rim
        else:
            c[2] = rng.uniform(atlas.centre_mm[2] - 35, atlas.centre_mm[2] + 35)
        depth = float(sample_maps(atlas, c[:, None])[d_out, 0])
        if depth > max(6.0, 0.5 * r_rim):       # inside the brain, not just under the surface
            break
    else:  # practically unreachable (half the box is deep brain); keep the lesion in the white matter
        c = atlas.centre_mm + np.array([rng.choice([-25.0, 25.0]), 0.0, 0.0])
    return TumourParams(
        centre_mm=c,
        r_core_mm=r_rim * float(rng.uniform(0.25, 0.7)),
        r_rim_mm=r_rim,
        r_oedema_mm=r_rim * float(rng.uniform(1.2, 1.9)),
        mass_effect=float(rng.uniform(0.15, 0.55)),
        shape=rng.uniform(-1, 1, (4, 4, 4)),
    )


def sample_params(task: str, label: str, label_index: int, *, dims: int, size: int, seed: int,
                  contrast: str) -> SubjectParams:
    """Draw every random parameter of one subject from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    if task == "alzheimer":
        severity = float(rng.normal(STAGE_SEVERITY[label_index], SEVERITY_SPREAD))
    else:  # normal ageing variety only; the tumour is the label
        severity = float(rng.uniform(-0.1, 0.45))
    s_pos = max(severity, 0.0)
    # Each effect gets its own multiplicative jitter: subjects atrophy in different patterns.
    vent_mm = VENT_MM * severity * float(rng.lognormal(0, 0.25)) + float(rng.normal(0, 0.8))
    erosion_mm = EROSION_MM * s_pos * float(rng.lognormal(0, 0.25))
    sulcal_mm = SULCAL_MM * s_pos * float(rng.lognormal(0, 0.25))
    temporal_loss = float(np.clip(TEMPORAL_LOSS * s_pos * rng.lognormal(0, 0.25), 0, 0.9))
    scale = float(rng.normal(1.0, 0.04)) * rng.normal(1.0, 0.02, 3)
    rotation = np.array([rng.normal(0, 4.0), rng.normal(0, 2.0)])
    # Br35H slices come from many levels; the Kaggle Alzheimer slices and 3D volumes are centred.
    slice_offset = float(rng.uniform(-14.0, 22.0) if (task == "tumor" and dims == 2) else rng.uniform(-4.0, 4.0))
    deformation_mm = float(rng.uniform(1.5, 4.0))
    # The cubic B-spline averages neighbouring control points: x2.7 makes deformation_mm the RMS displacement.
    displacement = rng.normal(0, 2.7 * deformation_mm, (3, DEFORM_GRID, DEFORM_GRID, DEFORM_GRID))
    con = contrast if contrast != "mixed" else ("t1" if rng.random() < 0.5 else "t2")
    tissue = np.asarray(TISSUE[con]) + rng.normal(0, 0.025, 3)
    lesion = np.asarray(LESION[con]) + rng.normal(0, 0.03, 3)
    z_plane = float(load_atlas().centre_mm[2]) + slice_offset
    tumour = _tumour(rng, dims, z_plane) if (task == "tumor" and label == "yes") else None
    return SubjectParams(
        task=task, label=label, label_index=label_index, dims=dims, size=size, seed=seed,
        severity=severity, vent_mm=vent_mm, erosion_mm=erosion_mm, sulcal_mm=sulcal_mm,
        temporal_loss=temporal_loss, scale=scale, rotation_deg=rotation, slice_offset_mm=slice_offset,
        deformation_mm=deformation_mm, displacement=displacement, contrast=con, tissue=tissue,
        lesion=lesion, tumour=tumour, bias_strength=float(rng.uniform(0.0, 0.35)),
        bias=rng.uniform(-1, 1, (BIAS_GRID,) * 3), blur_px=float(rng.uniform(0.3, 0.8)),
        noise_sigma=float(rng.uniform(0.01, 0.045)), noise_seed=int(rng.integers(0, 2**31 - 1)),
    )
