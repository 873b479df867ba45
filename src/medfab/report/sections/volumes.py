"""3D section: brain and tissue volumes, in-brain intensities, 3D FD/KID, MS-SSIM, voxel variance (the
mode-collapse monitor) and the nearest-training-volume check, with the issue's four goals as verdicts."""

from __future__ import annotations

from medfab.evaluation.families.base import Skipped
from medfab.evaluation.families.volumes import (
    KS_FACTOR,
    MIN_VARIANCE_RATIO,
    MSSSIM_MARGIN,
    P_COPIES,
    Distribution,
    NearestVolume,
    VolumesResult,
    VoxelVariance,
)
from medfab.report.sections.fidelity import distance_cells, fd_verdict
from medfab.report.tables import Cell, Table, at, f, pm
from medfab.report.verdicts import Verdict, num

RESULT = VolumesResult
TITLE = "Volumes: are the 3D brains real in size, tissue, variety and novelty?"
INTRO = (
    "Brain volume (Otsu mask) and tissue shares from the generated segmentations against real ones, intensities "
    "inside the brain, Fréchet / kernel distances in 3D pixel-PCA features, MS-SSIM between pairs of volumes of "
    "one set, the voxel-variance map (near-identical volumes, i.e. mode collapse, show as a dark map) and the "
    "distance of each synthetic volume to its nearest training volume. Real half B beside real half A shows "
    "what two real samples score."
)


def _ok(flag: bool | None) -> Cell:
    if flag is None:
        return Cell("—", cls="")
    return Cell("met" if flag else "not met", cls="good" if flag else "bad")


def _ks_met(d) -> bool | None:
    ks, kb = num(at(d, "ks")), num(at(d, "ks_baseline"))
    return None if ks is None or kb is None else ks <= KS_FACTOR * kb


def goals(r: VolumesResult) -> list[tuple[str, str, str, bool | None]]:
    """The issue's goals: (goal, synthetic figure, real reference, met?)."""
    out = []
    ms, mr = num(at(r.msssim.synth, "mean")), num(at(r.msssim.real, "mean"))
    out.append(
        (
            f"MS-SSIM within the set ≤ real's + {MSSSIM_MARGIN:g}",
            _fmt(ms, ".3f"),
            _fmt(mr, ".3f"),
            None if ms is None or mr is None else ms <= mr + MSSSIM_MARGIN,
        )
    )
    vv = r.voxel_variance if isinstance(r.voxel_variance, VoxelVariance) else None
    ratio = num(at(vv, "ratio"))
    out.append(
        (
            f"voxel variance in the brain ≥ {MIN_VARIANCE_RATIO:.0%} of real's",
            (_pct(ratio) if ratio is not None else "—"),
            _fmt(num(at(vv, "baseline_ratio")), ".0%") + " (real B)",
            None if ratio is None else ratio >= MIN_VARIANCE_RATIO,
        )
    )
    if isinstance(r.tissues, dict):
        for name, d in r.tissues.items():
            out.append(
                (
                    f"{name} volume: KS ≤ {KS_FACTOR:g}x real-vs-real",
                    _fmt(num(at(d, "ks")), ".2f"),
                    _fmt(num(at(d, "ks_baseline")), ".2f"),
                    _ks_met(d),
                )
            )
    p = r.privacy if isinstance(r.privacy, NearestVolume) else None
    flagged = p.flagged if p is not None else None
    out.append(
        (
            "no synthetic volume closer to a training volume than the closest held-out one",
            _fmt(num(at(p, "min_synth")), ".3f")
            + (f" ({len(flagged)} closer)" if flagged is not None else ""),
            _fmt(num(at(p, "min_holdout")), ".3f"),
            None if flagged is None else not flagged,
        )
    )
    return out


def _pct(x: float) -> str:
    return f"{x:.1%}" if abs(x) < 0.1 else f"{x:.0%}"


def _fmt(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def tables(r: VolumesResult, res=None) -> list[Table]:
    out = [
        Table(
            "Goals of the 3D study",
            ["goal", "synthetic", "real", ""],
            [
                [Cell(g, cls="label"), Cell(s, cls="num"), Cell(b, cls="num"), _ok(m)]
                for g, s, b, m in goals(r)
            ],
            note="Real column: real half A (MS-SSIM), real half B / real half A (variance ratio), real half B vs "
            "real half A (KS), the closest held-out real volume (distance).",
        )
    ]
    rows = []
    for name, d in [("brain volume (share of the field of view)", r.brain_volume)] + (
        list(r.tissues.items()) if isinstance(r.tissues, dict) else []
    ):
        fmt = ".1%"
        rows.append(
            [
                Cell(name, cls="label"),
                f(at(d, "real_mean"), fmt),
                f(at(d, "synth_mean"), fmt),
                f(at(d, "baseline_mean"), fmt),
                f(at(d, "ks"), ".2f"),
                f(at(d, "ks_baseline"), ".2f"),
            ]
        )
    note = "Tissues: each tissue's share of the labelled brain. " + (r.tissue_source or "")
    if isinstance(r.tissues, Skipped):
        note += f" Tissue volumes skipped: {r.tissues.skipped}"
    out.append(
        Table(
            "Brain and tissue volumes",
            ["", "mean real A", "mean synthetic", "mean real B", "KS synthetic", "KS real B"],
            rows,
            note=note,
        )
    )
    h = r.histogram
    dist_row = [Cell("all volumes", cls="label strong")]
    dist_row += (
        distance_cells(r.distances)
        if not isinstance(r.distances, Skipped) and r.distances
        else [f(r.distances)] * 4
    )
    out.append(
        Table(
            "Intensities in the brain and 3D feature distances (lower = closer to real A)",
            ["", "JS synthetic", "JS real B", "W1 synthetic", "W1 real B"],
            [
                [
                    Cell("intensity histogram", cls="label"),
                    f(at(h.synth, "js")),
                    f(at(h.baseline, "js")),
                    f(at(h.synth, "w1")),
                    f(at(h.baseline, "w1")),
                ]
            ],
        )
    )
    out.append(
        Table(
            f"Fréchet distance and KID in {r.feature_space} features",
            ["", "FD synthetic [95 % CI]", "FD real B [95 % CI]", "KID synthetic", "KID real B"],
            [dist_row],
            note="Voxels averaged to 16³ and projected on the principal components of real half A.",
        )
    )
    vv = r.voxel_variance
    out.append(
        Table(
            "Diversity: MS-SSIM between pairs and voxel variance inside the brain",
            ["", "synthetic", "real A", "real B"],
            [
                [
                    Cell("MS-SSIM (higher = more alike)", cls="label"),
                    pm(at(r.msssim.synth, "mean"), at(r.msssim.synth, "std")),
                    pm(at(r.msssim.real, "mean"), at(r.msssim.real, "std")),
                    Cell("", cls=""),
                ],
                [
                    Cell("mean voxel variance", cls="label"),
                    f(at(vv, "synth")),
                    f(at(vv, "real")),
                    f(at(vv, "baseline")),
                ],
                [
                    Cell("variance ratio to real A", cls="label"),
                    f(at(vv, "ratio"), ".0%"),
                    Cell("100%", cls="num"),
                    f(at(vv, "baseline_ratio"), ".0%"),
                ],
            ],
            note="Voxel variance: the variance of each voxel across the volumes of a set, averaged inside the voxels that "
            "are brain in at least half of the real volumes.",
        )
    )
    p = r.privacy
    if isinstance(p, NearestVolume):
        rows = [
            [Cell("closest", cls="label"), f(p.min_synth), f(p.min_holdout)],
            [Cell("median", cls="label"), f(p.median_synth), f(p.median_holdout)],
            [
                Cell("closer than the closest held-out volume", cls="label strong"),
                f(len(p.flagged), "d") if p.flagged is not None else f(None),
                Cell("0 expected", cls="muted"),
            ],
        ] + [
            [Cell(f"{c.get('synthetic')} ↔ {c.get('training')}", cls="label"), f(c.get("distance")), Cell("")]
            for c in p.closest
        ]
        out.append(
            Table(
                "Distance to the nearest training volume (RMS voxel difference at 32³)",
                ["", "synthetic", "held-out real"],
                rows,
            )
        )
    return out


def verdicts(r: VolumesResult, res=None) -> list[Verdict]:
    """The issue's goals: MS-SSIM at most real's + 0.05, voxel variance at least 50 % of real's, tissue KS at most
    twice real-vs-real (each bad when missed: they are the failures a 3D GAN study saw); brain-volume and
    histogram figures warn beyond twice their baseline; the nearest-volume check is bad for any flagged volume."""
    out = []
    ms, mr = num(at(r.msssim.synth, "mean")), num(at(r.msssim.real, "mean"))
    if ms is not None and mr is not None:
        if ms <= mr + MSSSIM_MARGIN:
            out.append(
                Verdict(
                    "good",
                    f"Synthetic volumes differ from each other about as much as real ones "
                    f"(MS-SSIM between pairs {ms:.3f} vs {mr:.3f}).",
                )
            )
        else:
            out.append(
                Verdict(
                    "bad",
                    f"Synthetic volumes are more alike than real ones (MS-SSIM {ms:.3f} vs "
                    f"{mr:.3f}; the goal is at most {mr + MSSSIM_MARGIN:.3f}): a sign of mode collapse.",
                )
            )
    vv = r.voxel_variance
    if isinstance(vv, VoxelVariance) and num(vv.ratio) is not None:
        ratio = num(vv.ratio)
        if ratio >= MIN_VARIANCE_RATIO:
            out.append(
                Verdict(
                    "good",
                    f"Inside the brain, synthetic volumes vary {_pct(ratio)} as much as real ones "
                    f"voxel by voxel (goal: at least {MIN_VARIANCE_RATIO:.0%}).",
                )
            )
        else:
            out.append(
                Verdict(
                    "bad",
                    f"Warning: inside the brain, synthetic volumes vary only {_pct(ratio)} as much as "
                    f"real ones voxel by voxel (goal: at least {MIN_VARIANCE_RATIO:.0%}): the "
                    f"generator makes near-identical brains (mode collapse), however good each looks.",
                )
            )
    if isinstance(r.tissues, dict):
        missed = [n for n, d in r.tissues.items() if _ks_met(d) is False]
        met = [n for n, d in r.tissues.items() if _ks_met(d)]
        for n in missed:
            d = r.tissues[n]
            out.append(
                Verdict(
                    "bad",
                    f"The {n} volume is distributed unlike real brains (KS {num(d.ks):.2f}, more "
                    f"than {KS_FACTOR:g}x the {num(d.ks_baseline):.2f} between real halves; mean "
                    f"share {num(d.synth_mean) or 0:.1%} vs {num(d.real_mean) or 0:.1%} real).",
                )
            )
        if met and not missed:
            out.append(
                Verdict(
                    "good",
                    f"Tissue volumes ({', '.join(met)}) are distributed like real ones "
                    f"(KS within {KS_FACTOR:g}x real-vs-real).",
                )
            )
    elif isinstance(r.tissues, Skipped):
        out.append(Verdict("info", f"Tissue volumes not measured: {r.tissues.skipped}."))
    bv = r.brain_volume
    if isinstance(bv, Distribution) and _ks_met(bv) is not None:
        out.append(
            Verdict(
                "good" if _ks_met(bv) else "warn",
                f"Brain volume: synthetic {num(bv.synth_mean) or 0:.1%} vs real {num(bv.real_mean) or 0:.1%} "
                f"of the field of view on average (KS {num(bv.ks):.2f} vs {num(bv.ks_baseline):.2f} "
                f"between real halves).",
            )
        )
    js_s, js_b = num(at(r.histogram.synth, "js")), num(at(r.histogram.baseline, "js"))
    if js_s is not None and js_b is not None:
        close = js_s <= max(2 * js_b, js_b + 0.002)
        out.append(
            Verdict(
                "good" if close else "warn",
                f"Intensities inside the brain are {'as close to real as two real halves are' if close else 'further from real than two real halves are'} "
                f"(JS {js_s:.3g} vs {js_b:.3g}).",
            )
        )
    if r.distances is not None and not isinstance(r.distances, Skipped):
        v = fd_verdict(r.distances, f"in {r.feature_space} features")
        if v:
            out.append(v)
    p = r.privacy
    if isinstance(p, NearestVolume):
        if p.flagged is None:
            out.append(
                Verdict(
                    "info",
                    "No held-out real volumes (--real-test): the nearest-training-volume check "
                    "has no reference, so look at the closest pairs.",
                )
            )
        elif p.flagged:
            k, pc = len(p.flagged), num(p.p_chance)
            text = (
                f"{k} of {p.n_synth} synthetic volumes sit closer to a training volume than any held-out real "
                f"volume does (closest {num(p.min_synth) or 0:.3f} vs {num(p.min_holdout) or 0:.3f})."
            )
            if pc is not None:
                text += (
                    f" New real volumes would be flagged about {num(p.expected_by_chance) or 0:.1f} time(s) by "
                    f"chance (p = {pc:.2g} for {k} or more)"
                )
            if pc is not None and pc >= P_COPIES:
                out.append(Verdict("warn", text + ": no more than chance, but look at the closest pairs."))
            else:
                tail = ": more than chance explains, so possible" if pc is not None else " Possible"
                out.append(Verdict("bad", text + f"{tail} copies; look at the closest pairs."))
        else:
            out.append(
                Verdict(
                    "good",
                    f"No synthetic volume is closer to a training volume than the closest held-out "
                    f"real volume is ({num(p.min_synth) or 0:.3f} vs {num(p.min_holdout) or 0:.3f}).",
                )
            )
    return out


def cards(r: VolumesResult, res=None) -> list:
    out = []
    vv = r.voxel_variance
    if isinstance(vv, VoxelVariance) and num(vv.ratio) is not None:
        out.append(
            (
                "Voxel variance",
                f"{num(vv.ratio):.0%} of real",
                "good" if num(vv.ratio) >= MIN_VARIANCE_RATIO else "bad",
            )
        )
    ms, mr = num(at(r.msssim.synth, "mean")), num(at(r.msssim.real, "mean"))
    if ms is not None and mr is not None:
        out.append(
            ("MS-SSIM (3D)", f"{ms:.2f} (real {mr:.2f})", "good" if ms <= mr + MSSSIM_MARGIN else "bad")
        )
    p = r.privacy
    if isinstance(p, NearestVolume) and p.flagged is not None:
        out.append(("Closer than held-out", f"{len(p.flagged)} volume(s)", "bad" if p.flagged else "good"))
    return out
