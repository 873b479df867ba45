"""Diversity section: MS-SSIM within each class, precision / recall / density / coverage, collapse check."""

from __future__ import annotations

from medfab.evaluation.families.diversity import Collapse, DiversityResult
from medfab.report.tables import Cell, Table, at, f, label, pm
from medfab.report.verdicts import Verdict, num

RESULT = DiversityResult
TITLE = "Diversity: do they vary as much as real ones?"
INTRO = (
    "MS-SSIM between random pairs within a class (higher = more alike) and precision / recall / density / "
    "coverage of the synthetic features against real ones."
)
_PRDC = ("precision", "recall", "density", "coverage")


def tables(r: DiversityResult, res=None) -> list[Table]:
    rows = []
    for c, v in r.msssim.items():
        cc = r.collapse.get(c)
        flag = cc.collapsed if isinstance(cc, Collapse) else None
        rows.append(
            [
                label(c),
                pm(at(v.synth, "mean"), at(v.synth, "std"), ".2f"),
                pm(at(v.real, "mean"), at(v.real, "std"), ".2f"),
                f(at(cc, "coverage"), ".2f"),
                Cell(
                    "collapsed" if flag else "ok" if flag is not None else "—",
                    title=str(at(cc, "message") or at(cc, "skipped") or ""),
                    cls="bad" if flag else "good" if flag is not None else "",
                ),
            ]
        )
    return [
        Table(
            "MS-SSIM within each class (higher = less diverse)",
            ["class", "synthetic", "real A", "coverage", "collapse check"],
            rows,
        ),
        Table(
            f"Precision / recall / density / coverage in {r.feature_space} features",
            [""] + [f"{k} synth" for k in _PRDC] + [f"{k} real B" for k in _PRDC],
            [
                [label(g)]
                + [f(at(v.synth, k), ".2f") for k in _PRDC]
                + [f(at(v.baseline, k), ".2f") for k in _PRDC]
                for g, v in r.prdc.items()
            ],
            note="Naeem et al. 2020, k nearest neighbours; real B shows what two real samples score.",
        ),
    ]


def verdicts(r: DiversityResult, res=None) -> list[Verdict]:
    """Each collapsed class (collapse_check's rule) is bad; recall/coverage below 0.7x real-vs-real warns."""
    out = []
    for c in r.collapsed():
        v = r.collapse[c]
        ms, mr, cov = num(v.msssim_synth), num(v.msssim_real), num(v.coverage)
        detail = f"MS-SSIM {ms:.2f} vs {mr:.2f} real" if ms is not None and mr is not None else ""
        if cov is not None:
            detail += f"{', ' if detail else ''}coverage {cov:.0%}"
        out.append(Verdict("bad", f"Warning: {c} looks collapsed ({detail})."))
    if r.collapse and not r.collapsed():
        out.append(
            Verdict("good", "No class looks collapsed: synthetic images vary about as much as real ones.")
        )
    g = r.prdc.get("overall")
    s, b = (g.synth, g.baseline) if g else (None, None)
    for key, name in (
        ("recall", "recall (how much of the real variety is reproduced)"),
        ("coverage", "coverage"),
        ("precision", "precision (how realistic)"),
    ):
        v, vb = num(at(s, key)), num(at(b, key))
        if v is not None and vb is not None and v < 0.7 * vb:
            out.append(Verdict("warn", f"Low {name}: {v:.2f} vs {vb:.2f} between real halves."))
    if not any(v.level == "warn" for v in out) and num(at(s, "recall")) is not None:
        out.append(
            Verdict(
                "good",
                f"Precision {num(at(s, 'precision')) or 0:.2f} / recall {num(at(s, 'recall')):.2f} are close to "
                f"real-vs-real ({num(at(b, 'precision')) or 0:.2f} / {num(at(b, 'recall')) or 0:.2f}).",
            )
        )
    return out


def cards(r: DiversityResult, res=None) -> list:
    if not r.collapse:
        return []
    bad = r.collapsed()
    return [("Collapse warnings", ", ".join(bad) if bad else "none", "bad" if bad else "good")]
