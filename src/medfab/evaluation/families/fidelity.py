"""Fidelity: do synthetic images look like real ones? Intensity histograms, brain mass, FD and KID.

Every figure is computed twice at equal sample sizes: synthetic subset vs real half A ("synth") and real
half B vs real half A ("baseline"), per group ("overall" and each class).
"""

from __future__ import annotations

from typing import Generic, Literal

from pydantic import BaseModel, Field

from medfab.errors import MedfabError
from medfab.evaluation.families.base import Loose, Num, Skipped, T, groups, maybe, scalars, try_metric, typed


class Vs(BaseModel, Generic[T]):
    """One figure for the synthetic set and the same figure between two real halves."""

    synth: maybe(T) | None = None
    baseline: maybe(T) | None = None


class HistogramDistance(Loose):
    js: Num = None  # Jensen-Shannon divergence, base 2
    w1: Num = None


class MassComparison(Loose):
    ks: Num = None
    ks_p: Num = None
    w1: Num = None
    real_mean: Num = None
    synth_mean: Num = None


class Interval(Loose):
    """:func:`medfab.evaluation.distances.bootstrap`: value with its 95 % percentile interval at ``n``."""

    value: Num = None
    lo: Num = None
    hi: Num = None
    n: int | None = None


class MeanStd(Loose):
    mean: Num = None
    std: Num = None


class GroupDistances(BaseModel):
    fd: Vs[Interval] = Field(default_factory=Vs[Interval])
    kid: Vs[MeanStd] = Field(default_factory=Vs[MeanStd])


class BrainMass(BaseModel):
    threshold: Num = None
    groups: dict[str, Vs[MassComparison]] = Field(default_factory=dict)


class FidelityResult(BaseModel):
    family: Literal["fidelity"] = "fidelity"
    histograms: dict[str, Vs[HistogramDistance]] = Field(default_factory=dict)
    brain_mass: BrainMass = Field(default_factory=BrainMass)
    distances: dict[str, maybe(dict[str, GroupDistances])] = Field(default_factory=dict)  # space -> group


def compute(ctx) -> tuple[FidelityResult, list]:
    from medfab.evaluation import plots
    from medfab.evaluation.brain_mass import compare_mass, fit_fixed_threshold
    from medfab.evaluation.distances import bootstrap, frechet_distance, kid
    from medfab.evaluation.histograms import compare_histograms

    cfg = ctx.cfg
    ga, gb, gs = groups(ctx, "half_a"), groups(ctx, "half_b"), groups(ctx, "synth_m")
    a, b, s = ctx.half_a.x, ctx.half_b.x, ctx.synth_m.x
    data: dict = {"histograms": {}, "brain_mass": {}, "distances": {}}
    ctx.step("intensity histograms")
    for g in ga:
        data["histograms"][g] = {
            "synth": scalars(try_metric(compare_histograms, a[ga[g]], s[gs[g]])),
            "baseline": scalars(try_metric(compare_histograms, a[ga[g]], b[gb[g]])),
        }
    ctx.step("brain mass")
    t = fit_fixed_threshold(ctx.real.x)
    mass, mass_plot = {}, {}
    for g in ga:
        ms = try_metric(compare_mass, a[ga[g]], s[gs[g]], t)
        mb = try_metric(compare_mass, a[ga[g]], b[gb[g]], t)
        mass[g] = {"synth": scalars(ms), "baseline": scalars(mb)}
        if "real" in ms and "real" in mb:
            mass_plot[g] = {"real A": ms["real"], "real B": mb["synth"], "synthetic": ms["synth"]}
    data["brain_mass"] = {"threshold": t, "groups": mass}
    for space in cfg.features:
        try:  # one feature space that cannot run (e.g. radiomics on 3D) must not cost the others
            fa, fb, fs = (ctx.features(space, w) for w in ("half_a", "half_b", "synth_m"))
        except MedfabError as e:
            data["distances"][space] = {"skipped": e.message}
            continue
        ctx.step(f"FD/KID in {space} features")
        res = {}
        for g in ga:
            pair = {"synth": (fa[ga[g]], fs[gs[g]]), "baseline": (fa[ga[g]], fb[gb[g]])}
            # one fixed n for both pairs (FD is biased upwards at small n); value = median of the replicates
            fd = {
                k: try_metric(
                    bootstrap,
                    frechet_distance,
                    f1,
                    f2,
                    n_boot=cfg.n_boot,
                    seed=cfg.seed,
                    sample_size=min(len(f1), len(f2)),
                )
                for k, (f1, f2) in pair.items()
            }
            kd = {}
            for k, (f1, f2) in pair.items():
                v = try_metric(
                    kid,
                    f1,
                    f2,
                    subset_size=min(cfg.kid_subset, len(f1), len(f2)),
                    n_subsets=cfg.kid_subsets,
                    seed=cfg.seed,
                )
                # One distinct subset (one drawn, or both sets whole every time): a spread of 0 would read
                # as certainty, so there is none to show.
                one = cfg.kid_subsets < 2 or len(f1) == len(f2) <= cfg.kid_subset
                kd[k] = {"mean": v[0], "std": None if one else v[1]} if isinstance(v, tuple) else v
            res[g] = {"fd": fd, "kid": kd}
        data["distances"][space] = res
    figs = [
        (
            plots.histogram_overlays(
                {g: (a[ga[g]], b[gb[g]], s[gs[g]]) for g in ga}, ctx.fig("histograms.png")
            ),
            "Pixel intensity histograms per class: real half A, real half B (dashed) and synthetic",
        )
    ]
    if mass_plot:
        figs.append(
            (
                plots.value_distributions(
                    mass_plot,
                    ctx.fig("brain_mass.png"),
                    title=f"Brain mass (fraction of pixels above {t:.2f})",
                    xlabel="brain mass",
                ),
                "Brain-mass distributions per class, at one threshold learnt on the real images",
            )
        )
    return typed(FidelityResult, data), figs


__all__ = ["FidelityResult", "Skipped", "Vs", "compute"]
