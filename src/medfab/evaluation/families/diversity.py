"""Diversity: do synthetic images vary as much as real ones? MS-SSIM within a class, PRDC, collapse check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from medfab.evaluation.families.base import Loose, Num, groups, maybe, scalars, try_metric, typed
from medfab.evaluation.families.fidelity import MeanStd


class MsssimPair(BaseModel):
    synth: maybe(MeanStd) | None = None
    real: maybe(MeanStd) | None = None  # real half A


class Prdc(Loose):
    """Naeem et al. 2020: precision / recall / density / coverage with k nearest neighbours."""

    precision: Num = None
    recall: Num = None
    density: Num = None
    coverage: Num = None


class PrdcGroup(BaseModel):
    synth: maybe(Prdc) | None = None
    baseline: maybe(Prdc) | None = None
    k: int | None = None


class Collapse(Loose):
    """:func:`medfab.evaluation.diversity.collapse_check` for one class."""

    collapsed: bool | None = None
    msssim_real: Num = None
    msssim_synth: Num = None
    coverage: Num = None
    message: str | None = None


class DiversityResult(BaseModel):
    family: Literal["diversity"] = "diversity"
    feature_space: str = ""
    msssim: dict[str, MsssimPair] = Field(default_factory=dict)  # per class
    prdc: dict[str, PrdcGroup] = Field(default_factory=dict)  # "overall" and per class
    collapse: dict[str, maybe(Collapse)] = Field(default_factory=dict)  # per class

    def collapsed(self) -> list[str]:
        return [c for c, v in self.collapse.items() if isinstance(v, Collapse) and v.collapsed]


def compute(ctx) -> tuple[DiversityResult, list]:
    from medfab.evaluation import plots
    from medfab.evaluation.diversity import collapse_check, msssim_pairs
    from medfab.evaluation.prdc import prdc

    cfg = ctx.cfg
    space = cfg.features[0]
    fa, fb, fs = (ctx.features(space, w) for w in ("half_a", "half_b", "synth_m"))
    ga, gb, gs = groups(ctx, "half_a"), groups(ctx, "half_b"), groups(ctx, "synth_m")
    a, s = ctx.half_a.x, ctx.synth_m.x
    data: dict = {"feature_space": space, "msssim": {}, "prdc": {}, "collapse": {}}
    dist_plot = {}
    ctx.step("MS-SSIM within each class")
    for c in ctx.classes:
        ms = try_metric(msssim_pairs, s[gs[c]], cfg.msssim_pairs, cfg.seed)
        mr = try_metric(msssim_pairs, a[ga[c]], cfg.msssim_pairs, cfg.seed)
        data["msssim"][c] = {"synth": scalars(ms), "real": scalars(mr)}
        if "values" in ms and "values" in mr:
            dist_plot[c] = {"real": mr["values"], "synthetic": ms["values"]}
    ctx.step(f"precision / recall / density / coverage ({space})")
    for g in ga:
        k = int(max(1, min(5, len(ga[g]) - 1, len(gs[g]) - 1)))
        data["prdc"][g] = {
            "synth": try_metric(prdc, fa[ga[g]], fs[gs[g]], k=k),
            "baseline": try_metric(prdc, fa[ga[g]], fb[gb[g]], k=k),
            "k": k,
        }
    ctx.step("collapse check")
    for c in ctx.classes:
        k = int(max(1, min(5, len(ga[c]) - 2, len(gs[c]) - 2)))
        data["collapse"][c] = try_metric(
            collapse_check,
            a[ga[c]],
            s[gs[c]],
            fa[ga[c]],
            fs[gs[c]],
            n_pairs=cfg.msssim_pairs,
            seed=cfg.seed,
            k=k,
        )
    figs = []
    if dist_plot:
        figs.append(
            (
                plots.value_distributions(
                    dist_plot,
                    ctx.fig("msssim.png"),
                    title="MS-SSIM between random pairs (higher = less diverse)",
                    xlabel="MS-SSIM",
                ),
                "MS-SSIM of random pairs within each class, real half A vs synthetic",
            )
        )
    return typed(DiversityResult, data), figs
