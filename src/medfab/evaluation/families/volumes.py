"""Volumes: the 3D family. Do generated brain volumes have real brain and tissue volumes, real intensities,
real variety (the mode-collapse monitor), and are none of them copies of a training volume?

Reads NIfTI folders itself (:mod:`medfab.evaluation.volumes.io`): real train (split into halves A and B for
the real-vs-real baseline), synthetic (a subset of half B's size is compared), and the real test set (held
out from the generator: the reference of the privacy check). The issue's goals, checked in the report:

* within-set MS-SSIM of synthetic volumes at most real's + 0.05 (:data:`MSSSIM_MARGIN`);
* mean voxel variance inside the brain at least 50 % of real's (:data:`MIN_VARIANCE_RATIO`);
* tissue-volume distributions within twice the real-vs-real KS (:data:`KS_FACTOR`);
* no synthetic volume closer to a training volume than the closest held-out real volume is (new real
  volumes miss it by chance too: the verdict is bad only when more are flagged than chance explains,
  ``p_chance`` < :data:`P_COPIES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from medfab.evaluation.families.base import Loose, Num, Skipped, maybe, scalars, try_metric, typed
from medfab.evaluation.families.diversity import MsssimPair
from medfab.evaluation.families.fidelity import GroupDistances, HistogramDistance, Vs
from medfab.evaluation.volumes.io import VolumeSet

MSSSIM_MARGIN = 0.05
MIN_VARIANCE_RATIO = 0.5
KS_FACTOR = 2.0
P_COPIES = 0.01
MAX_3D_PAIRS = 32  # MS-SSIM pairs of volumes per set (about 1 s per 64³ pair on one CPU core)


class Distribution(Loose):
    """A per-volume value: synthetic vs real half A beside real half B vs real half A."""

    ks: Num = None
    ks_p: Num = None
    ks_baseline: Num = None
    real_mean: Num = None
    synth_mean: Num = None
    baseline_mean: Num = None


class VoxelVariance(Loose):
    """Mean voxel variance inside the real brain mask; ratios are to real half A."""

    real: Num = None
    synth: Num = None
    baseline: Num = None
    ratio: Num = None
    baseline_ratio: Num = None
    mask_fraction: Num = None


class NearestVolume(Loose):
    """RMS voxel distance of each volume to its nearest training volume (see metrics.nearest_training)."""

    min_synth: Num = None
    median_synth: Num = None
    min_holdout: Num = None
    median_holdout: Num = None
    n_synth: int = 0
    # synthetic volumes closer than the closest held-out one (None: no test set), and how often new real
    # volumes would be flagged by chance (see medfab.evaluation.volumes.metrics)
    flagged: list[int] | None = None
    p_chance: Num = None
    expected_by_chance: Num = None
    closest: list[dict] = Field(default_factory=list)  # synthetic key, training key, distance


class VolumesResult(BaseModel):
    family: Literal["volumes"] = "volumes"
    size: int = 0
    histogram: Vs[HistogramDistance] = Field(default_factory=Vs[HistogramDistance])  # inside the brain
    brain_volume: maybe(Distribution) | None = None  # fraction of the field of view inside the Otsu mask
    tissue_source: str = ""
    tissues: maybe(dict[str, maybe(Distribution)]) = Field(
        default_factory=dict
    )  # share of the labelled brain
    feature_space: str = "pixel-PCA 3D"
    distances: maybe(GroupDistances) | None = None
    msssim: MsssimPair = Field(default_factory=MsssimPair)
    voxel_variance: maybe(VoxelVariance) | None = None
    privacy: maybe(NearestVolume) | None = None


@dataclass
class VolumeContext:
    """The loaded volume sets (see :func:`load`): what :func:`compute` reads."""

    cfg: Any  # the EvalConfig (dims 3)
    out: Path
    real: VolumeSet  # real training volumes (capped)
    test: VolumeSet | None  # real test volumes: the privacy reference (None without --real-test)
    synth: VolumeSet
    half_a: VolumeSet  # reference real half
    half_b: VolumeSet  # the other half, cut to the synthetic count: the real-vs-real baseline
    synth_m: VolumeSet  # synthetic subset of half B's size
    real_shares: np.ndarray | None = None  # (N, T) tissue shares from --real-seg-volumes
    step: Callable[[str], None] = lambda s: None

    def fig(self, name: str):
        return self.out / "figures" / name

    def counts(self) -> dict[str, dict[str, int]]:
        sets = {
            "real_train": self.real,
            "real_test": self.test,
            "synthetic": self.synth,
            "real_half_a": self.half_a,
            "real_half_b": self.half_b,
            "synthetic_matched": self.synth_m,
        }
        return {k: {"volumes": len(v)} for k, v in sets.items() if v is not None}


def load(cfg, out) -> VolumeContext:
    """Read the three folders at ``cfg.size``³, cap (seeded), split real into halves, match synthetic to half B."""
    from medfab.evaluation.volumes.io import load_volumes
    from medfab.evaluation.volumes.tissues import read_seg_volumes, shares

    rng = np.random.default_rng(cfg.seed)

    def cap(vs):
        n = cfg.max_per_class
        return vs if n is None or len(vs) <= n else vs.take(np.sort(rng.choice(len(vs), n, replace=False)))

    real = cap(load_volumes(cfg.real_train, cfg.size, name="real train", min_n=4))
    synth = cap(load_volumes(cfg.synthetic, cfg.size, name="synthetic", min_n=2))
    test = cap(load_volumes(cfg.real_test, cfg.size, name="real test", min_n=1)) if cfg.real_test else None
    perm = rng.permutation(len(real))
    half = (len(real) + 1) // 2
    half_a, half_b = real.take(np.sort(perm[:half])), real.take(np.sort(perm[half:]))
    n = min(len(half_b), len(synth))
    half_b = half_b.take(np.sort(rng.permutation(len(half_b))[:n]))
    synth_m = synth.take(np.sort(rng.permutation(len(synth))[:n]))
    real_shares = shares(read_seg_volumes(cfg.real_seg_volumes)[1]) if cfg.real_seg_volumes else None
    return VolumeContext(cfg, out, real, test, synth, half_a, half_b, synth_m, real_shares)


def compute(ctx: VolumeContext) -> tuple[VolumesResult, list]:
    from medfab.evaluation.histograms import compare_histograms
    from medfab.evaluation.plots import value_distributions
    from medfab.evaluation.volumes import metrics as M
    from medfab.evaluation.volumes import plots as P
    from medfab.evaluation.volumes.msssim import msssim_pairs_3d

    cfg = ctx.cfg
    a, b, s = ctx.half_a.x, ctx.half_b.x, ctx.synth_m.x
    data: dict = {"size": cfg.size}
    figs: list = []
    dist_plot: dict = {}

    ctx.step("intensity histograms inside the brain")
    hs = try_metric(compare_histograms, a, s, mask_background=True)
    hb = try_metric(compare_histograms, a, b, mask_background=True)
    data["histogram"] = {"synth": scalars(hs), "baseline": scalars(hb)}
    if "real" in hs and "synth" in hb:
        dens = {"real A": hs["real"], "real B": hb["synth"], "synthetic": hs["synth"]}
        figs.append(
            (
                P.brain_histograms(np.asarray(hs["bins"]), dens, ctx.fig("volume_histograms.png")),
                "Voxel intensities inside the brain masks: real half A, real half B (dashed), synthetic",
            )
        )

    ctx.step("brain volume (Otsu)")
    fa, fb, fs = (M.brain_fraction(v) for v in (a, b, s))
    data["brain_volume"] = try_metric(M.ks_vs_baseline, fa, fs, fb)
    dist_plot["brain volume (fraction of the field of view)"] = {"real A": fa, "real B": fb, "synthetic": fs}

    ctx.step("tissue volumes")
    data["tissues"], data["tissue_source"] = _tissues(ctx, dist_plot)
    if dist_plot:
        figs.append(
            (
                value_distributions(
                    dist_plot,
                    ctx.fig("volume_distributions.png"),
                    title="Brain and tissue volumes",
                    xlabel="share",
                ),
                "Brain volume (Otsu mask) and each tissue's share of the labelled brain",
            )
        )

    ctx.step("Fréchet distance / KID in 3D pixel-PCA features")
    data["distances"] = try_metric(_distances, ctx)

    ctx.step("MS-SSIM within each set")
    pairs = min(cfg.msssim_pairs, MAX_3D_PAIRS)
    data["msssim"] = {
        "synth": scalars(try_metric(msssim_pairs_3d, s, pairs, cfg.seed)),
        "real": scalars(try_metric(msssim_pairs_3d, a, pairs, cfg.seed)),
    }

    ctx.step("voxel variance")
    mask = M.brain_mask(a)
    var = {"real A": M.voxel_variance(a), "real B": M.voxel_variance(b), "synthetic": M.voxel_variance(s)}
    vr, vb, vs = (try_metric(M.variance_in_mask, var[k], mask) for k in ("real A", "real B", "synthetic"))
    if isinstance(vr, float) and vr > 0:
        data["voxel_variance"] = {
            "real": vr,
            "synth": vs,
            "baseline": vb,
            "ratio": _div(vs, vr),
            "baseline_ratio": _div(vb, vr),
            "mask_fraction": float(mask.mean()),
        }
    else:
        data["voxel_variance"] = (
            vr if isinstance(vr, dict) else {"skipped": "real volumes do not vary in the brain"}
        )
    figs.append(
        (
            P.variance_maps(var, ctx.fig("voxel_variance.png")),
            "Variance of each voxel across the volumes of each set, one colour scale",
        )
    )

    ctx.step("nearest training volume")
    data["privacy"], pfigs = _privacy(ctx)
    figs += pfigs
    return typed(VolumesResult, data), figs


def _div(x, y):
    return x / y if isinstance(x, float) and isinstance(y, float) and y > 0 else None


def _tissues(ctx: VolumeContext, dist_plot: dict) -> tuple[dict, str]:
    """Tissue shares: synthetic segmentations vs real (seg files beside the real volumes, or seg_volumes.csv)."""
    from medfab.evaluation.volumes import metrics as M
    from medfab.evaluation.volumes.tissues import TISSUES, shares

    if ctx.synth_m.tissue is None:
        return {"skipped": "the synthetic volumes have no segmentation beside them (<stem>_seg.nii.gz)"}, ""
    sh_s = shares(ctx.synth_m.tissue)
    if ctx.real_shares is not None:
        rng = np.random.default_rng(ctx.cfg.seed + 3)
        perm = rng.permutation(len(ctx.real_shares))
        half = (len(perm) + 1) // 2
        # half B cut to the synthetic count: both KS figures at the same sample sizes (KS grows as n shrinks)
        sh_a, sh_b = ctx.real_shares[perm[:half]], ctx.real_shares[perm[half:][: len(sh_s)]]
        source = f"real: {ctx.cfg.real_seg_volumes} (DLMUSE ROIs mapped to tissues), halves of its subjects"
    elif ctx.half_a.tissue is not None:
        sh_a, sh_b = shares(ctx.half_a.tissue), shares(ctx.half_b.tissue)
        source = "real: the segmentations beside the real training volumes"
    else:
        return {
            "skipped": "no real tissue volumes: give --real-seg-volumes CSV or <stem>_seg.nii.gz beside the "
            "real volumes"
        }, ""
    out = {}
    for k, name in enumerate(TISSUES):
        out[name] = try_metric(M.ks_vs_baseline, sh_a[:, k], sh_s[:, k], sh_b[:, k])
        dist_plot[name] = {"real A": sh_a[:, k], "real B": sh_b[:, k], "synthetic": sh_s[:, k]}
    return out, source


def _distances(ctx: VolumeContext) -> dict:
    from medfab.evaluation.distances import bootstrap, frechet_distance, kid
    from medfab.evaluation.volumes.metrics import VolumePCA

    cfg = ctx.cfg
    ext = VolumePCA(seed=cfg.seed).fit(ctx.half_a.x)
    fa, fb, fs = (ext.transform(v.x) for v in (ctx.half_a, ctx.half_b, ctx.synth_m))
    out: dict = {"fd": {}, "kid": {}}
    for k, f2 in (("synth", fs), ("baseline", fb)):
        n = min(len(fa), len(f2))
        out["fd"][k] = try_metric(
            bootstrap, frechet_distance, fa, f2, n_boot=cfg.n_boot, seed=cfg.seed, sample_size=n
        )
        v = try_metric(
            kid, fa, f2, subset_size=min(cfg.kid_subset, n), n_subsets=cfg.kid_subsets, seed=cfg.seed
        )
        out["kid"][k] = {"mean": v[0], "std": v[1]} if isinstance(v, tuple) else v
    return out


def _privacy(ctx: VolumeContext) -> tuple[dict, list]:
    from medfab.evaluation.plots import value_distributions
    from medfab.evaluation.volumes import metrics as M
    from medfab.evaluation.volumes import plots as P

    nn = M.nearest_training(ctx.real.x, ctx.test.x if ctx.test is not None else None, ctx.synth.x)
    order = np.argsort(nn["synth_nn"], kind="stable")[: min(3, len(nn["synth_nn"]))]
    nn["closest"] = [
        {
            "synthetic": ctx.synth.keys[j],
            "training": ctx.real.keys[nn["synth_nn_index"][j]],
            "distance": nn["synth_nn"][j],
        }
        for j in order
    ]
    rows = []
    for j in order[:2]:
        rows += [
            (f"synthetic d={nn['synth_nn'][j]:.3f}", ctx.synth.x[j]),
            ("nearest training", ctx.real.x[nn["synth_nn_index"][j]]),
        ]
    figs = [
        (
            P.orthogonal_slices(rows, ctx.fig("closest_volumes.png")),
            "The synthetic volumes closest to a training volume, each above that training volume",
        )
    ]
    if nn["holdout_nn"]:
        figs.append(
            (
                value_distributions(
                    {
                        "distance to nearest training volume": {
                            "real": nn["holdout_nn"],
                            "synthetic": nn["synth_nn"],
                        }
                    },
                    ctx.fig("volume_nn_distances.png"),
                    title="Memorisation check",
                    xlabel="RMS voxel distance (real = held-out test volumes)",
                ),
                "Nearest-training-volume distances: synthetic volumes should not sit closer than held-out real ones",
            )
        )
    else:
        nn["note"] = "no --real-test: no held-out reference, so nothing is flagged"
    data = {k: v for k, v in nn.items() if k not in ("synth_nn", "synth_nn_index", "holdout_nn")}
    return data, figs


def sample_figures(ctx: VolumeContext) -> list:
    """Three orthogonal slices of a few real and synthetic volumes, and a mid-slice montage (seeded picks)."""
    from medfab.evaluation.volumes import plots as P

    rng = np.random.default_rng(ctx.cfg.seed)
    pick = {
        name: rng.choice(len(v), size=min(k, len(v)), replace=False)
        for name, v, k in (("real", ctx.real, 3), ("synthetic", ctx.synth, 3))
    }
    rows = [
        (f"{name} {i + 1}", (ctx.real if name == "real" else ctx.synth).x[j])
        for name in ("real", "synthetic")
        for i, j in enumerate(pick[name])
    ]
    n = ctx.cfg.gallery
    mont = [
        ("synthetic", ctx.synth.x[rng.choice(len(ctx.synth), min(n, len(ctx.synth)), replace=False)]),
        ("real", ctx.real.x[rng.choice(len(ctx.real), min(n, len(ctx.real)), replace=False)]),
    ]
    return [
        (
            P.orthogonal_slices(rows, ctx.fig("volumes_orthogonal.png")),
            "Axial, coronal and sagittal middle slices of a few real and synthetic volumes",
        ),
        (
            P.montage(mont, ctx.fig("volumes_montage.png"), per_row=n),
            "Middle axial slice of synthetic (top) and real (bottom) volumes",
        ),
    ]


__all__ = ["Skipped", "VolumeContext", "VolumesResult", "compute", "load", "sample_figures"]
