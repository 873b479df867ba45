"""Fidelity section: intensity histograms, brain mass, Fréchet distance and KID, each beside real-vs-real."""

from __future__ import annotations

from medfab.evaluation.families.base import Skipped
from medfab.evaluation.families.fidelity import FidelityResult, HistogramDistance
from medfab.report.tables import Cell, Table, at, ci, f, label, pm
from medfab.report.verdicts import Verdict, num

RESULT = FidelityResult
TITLE = "Fidelity: do synthetic images look like real ones?"
INTRO = (
    "Intensity histograms, brain mass and Fréchet / kernel distances between feature distributions. Each "
    "synthetic figure sits beside the same figure for two disjoint halves of the real data."
)


def tables(r: FidelityResult, res=None) -> list[Table]:
    out = [
        Table(
            "Intensity histograms (lower = closer to real half A)",
            ["", "JS synthetic", "JS real B", "W1 synthetic", "W1 real B"],
            [
                [
                    label(g),
                    f(at(v.synth, "js")),
                    f(at(v.baseline, "js")),
                    f(at(v.synth, "w1")),
                    f(at(v.baseline, "w1")),
                ]
                for g, v in r.histograms.items()
            ],
            note="Jensen–Shannon divergence (base 2) and Wasserstein-1 of pixel intensities.",
        )
    ]
    t = num(r.brain_mass.threshold)
    out.append(
        Table(
            "Brain mass (fraction of the image above a threshold learnt on real)",
            [
                "",
                "mean real A",
                "mean synthetic",
                "mean real B",
                "KS synthetic",
                "KS real B",
                "W1 synthetic",
                "W1 real B",
            ],
            [
                [
                    label(g),
                    f(at(v.synth, "real_mean"), ".1%"),
                    f(at(v.synth, "synth_mean"), ".1%"),
                    f(at(v.baseline, "synth_mean"), ".1%"),
                    f(at(v.synth, "ks"), ".2f"),
                    f(at(v.baseline, "ks"), ".2f"),
                    f(at(v.synth, "w1")),
                    f(at(v.baseline, "w1")),
                ]
                for g, v in r.brain_mass.groups.items()
            ],
            note=f"Threshold {t:.3f} on the [-1, 1] scale." if t is not None else "",
        )
    )
    for space, grp in r.distances.items():
        if isinstance(grp, Skipped):
            out.append(
                Table(f"Fréchet distance and KID in {space} features", [], [], note=f"Skipped: {grp.skipped}")
            )
            continue
        out.append(
            Table(
                f"Fréchet distance and KID in {space} features (lower = closer)",
                ["", "FD synthetic [95 % CI]", "FD real B [95 % CI]", "KID synthetic", "KID real B"],
                [[label(g), *distance_cells(v)] for g, v in grp.items()],
                note="Both columns compare with real half A at equal sample sizes; per-class FDs on few "
                "images are biased upwards, so read them against the real B column.",
            )
        )
    return out


def distance_cells(v) -> list[Cell]:
    """FD synthetic, FD real B, KID synthetic, KID real B of one :class:`GroupDistances`."""
    kid = [v.kid.synth, v.kid.baseline]
    return [ci(v.fd.synth), ci(v.fd.baseline)] + [pm(at(k, "mean"), at(k, "std"), ".3g") for k in kid]


def verdicts(r: FidelityResult, res=None) -> list[Verdict]:
    """Histogram JS within 2x (+0.002) of real-vs-real is good; brain-mass KS within 2x (+0.05) too; an FD
    whose interval overlaps the baseline's is good, below 2x the baseline a warning, beyond that bad."""
    out = []
    h = r.histograms.get("overall")
    js_s, js_b = (num(at(h.synth, "js")), num(at(h.baseline, "js"))) if h else (None, None)
    if js_s is not None and js_b is not None:
        if js_s <= max(2 * js_b, js_b + 0.002):
            out.append(
                Verdict(
                    "good",
                    f"Synthetic intensity histograms are as close to real as two halves of "
                    f"the real data (JS {js_s:.3g} vs {js_b:.3g}).",
                )
            )
        else:
            out.append(
                Verdict(
                    "warn",
                    f"Synthetic intensity histograms are further from real than two real "
                    f"halves are (JS {js_s:.3g} vs {js_b:.3g}, {js_s / max(js_b, 1e-12):.1f}x).",
                )
            )
        far = [g for g, v in r.histograms.items() if g != "overall" and _far(v)]
        if far:
            out.append(Verdict("warn", f"Intensities differ most for {', '.join(far)}."))
    m = r.brain_mass.groups.get("overall")
    if m is not None:
        ks_s, ks_b = num(at(m.synth, "ks")), num(at(m.baseline, "ks"))
        m_r, m_s = num(at(m.synth, "real_mean")), num(at(m.synth, "synth_mean"))
        if None not in (ks_s, ks_b, m_r, m_s):
            level = "good" if ks_s <= max(2 * ks_b, ks_b + 0.05) else "warn"
            out.append(
                Verdict(
                    level,
                    f"Brain mass: synthetic {m_s:.1%} vs real {m_r:.1%} of the image on average "
                    f"(KS {ks_s:.2f} vs {ks_b:.2f} between real halves).",
                )
            )
    for space, grp in r.distances.items():
        if isinstance(grp, Skipped) or "overall" not in grp:
            continue
        v = fd_verdict(grp["overall"], f"in {space} features")
        if v:
            out.append(v)
    return out


def fd_verdict(g, where: str) -> Verdict | None:
    """The Fréchet-distance rule for one :class:`GroupDistances` (also used by the 3D section)."""
    s, b = g.fd.synth, g.fd.baseline
    v, vb = num(at(s, "value")), num(at(b, "value"))
    if v is None or vb is None:
        return None
    lo, hi_b = num(at(s, "lo")) or v, num(at(b, "hi")) or vb
    if lo <= hi_b:
        return Verdict(
            "good", f"Fréchet distance {where} is within the real-vs-real range ({v:.3g} vs {vb:.3g})."
        )
    ratio = v / max(vb, 1e-12)
    return Verdict(
        "warn" if ratio < 2 else "bad",
        f"Fréchet distance {where} is {ratio:.1f}x the real-vs-real one ({v:.3g} vs {vb:.3g}).",
    )


def _far(v) -> bool:
    s, b = num(at(v.synth, "js")), num(at(v.baseline, "js"))
    return (s or 0) > 3 * (b or 0) + 0.005


def cards(r: FidelityResult, res=None) -> list:
    return []


__all__ = ["HistogramDistance", "cards", "tables", "verdicts"]
