"""The report's tables, built from results.json as rows of formatted text cells (no HTML here).

A skipped value (``{"skipped": reason}``) prints as "—" with the reason as a hover title, never "nan".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medfab.report.verdicts import first, get, num


@dataclass
class Cell:
    text: str
    title: str = ""  # hover text (e.g. why a value was skipped)
    cls: str = ""  # css class: "num", "good", "bad", ...


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    note: str = ""
    first_col_label: bool = True
    extra: dict = field(default_factory=dict)


def f(v: Any, fmt: str = ".3g") -> Cell:
    """A number as a cell; a skipped or missing value as an em dash with the reason on hover."""
    if isinstance(v, dict) and "skipped" in v:
        return Cell("—", title=str(v["skipped"]), cls="num skipped")
    x = num(v)
    if x is None:
        return Cell("—" if v is None else str(v), cls="")
    return Cell(format(round(x) if fmt.endswith("d") else x, fmt), cls="num")


def ci(d: Any) -> Cell:
    """``value [lo, hi]`` from a bootstrap dict."""
    if not isinstance(d, dict) or num(d.get("value")) is None:
        return f(d)
    lo, hi = num(d.get("lo")), num(d.get("hi"))
    txt = f"{d['value']:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else "")
    return Cell(txt, title=f"95 % bootstrap interval, n = {d.get('n', '?')}", cls="num")


def pm(mean: Any, std: Any, fmt: str = ".3f") -> Cell:
    m, s = num(mean), num(std)
    if m is None:
        return f(mean)
    if s is not None and abs(s) < 1e-12:  # round-off of a spread that is really 0 (one seed, one subset)
        s = 0.0
    return Cell(f"{m:{fmt}} ± {s:{fmt}}" if s is not None else format(m, fmt), cls="num")


def _label(g: str) -> Cell:
    return Cell("all classes" if g == "overall" else g, cls="label strong" if g == "overall" else "label")


def counts(res: dict) -> Table:
    c = res.get("counts") or {}
    sets = [
        k
        for k in ("real_train", "real_test", "synthetic", "real_half_a", "real_half_b", "synthetic_matched")
        if k in c
    ]
    rows = [
        [Cell(cls_, cls="label")] + [f(c[s].get(cls_, 0), "d") for s in sets]
        for cls_ in res.get("classes", [])
    ]
    rows.append([Cell("total", cls="label strong")] + [f(sum(c[s].values()), "d") for s in sets])
    return Table(
        "Images per class",
        ["class"] + [s.replace("_", " ") for s in sets],
        rows,
        note="Fidelity and diversity compare real half A with real half B and with a synthetic subset of "
        'half B\'s size per class ("synthetic matched"; half B is cut where the synthetic class is smaller), '
        "so both comparisons use the same sample sizes.",
    )


def fidelity(d: dict) -> list[Table]:
    out = []
    h = d.get("histograms") or {}
    out.append(
        Table(
            "Intensity histograms (lower = closer to real half A)",
            ["", "JS synthetic", "JS real B", "W1 synthetic", "W1 real B"],
            [
                [
                    _label(g),
                    f(get(v, "synth", "js")),
                    f(get(v, "baseline", "js")),
                    f(get(v, "synth", "w1")),
                    f(get(v, "baseline", "w1")),
                ]
                for g, v in h.items()
            ],
            note="Jensen–Shannon divergence (base 2) and Wasserstein-1 of pixel intensities.",
        )
    )
    m = get(d, "brain_mass", "groups") or {}
    t = num(get(d, "brain_mass", "threshold"))
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
                    _label(g),
                    f(get(v, "synth", "real_mean"), ".1%"),
                    f(get(v, "synth", "synth_mean"), ".1%"),
                    f(get(v, "baseline", "synth_mean"), ".1%"),
                    f(get(v, "synth", "ks"), ".2f"),
                    f(get(v, "baseline", "ks"), ".2f"),
                    f(get(v, "synth", "w1")),
                    f(get(v, "baseline", "w1")),
                ]
                for g, v in m.items()
            ],
            note=f"Threshold {t:.3f} on the [-1, 1] scale." if t is not None else "",
        )
    )
    for space, groups in (d.get("distances") or {}).items():
        if "skipped" in groups:
            out.append(
                Table(
                    f"Fréchet distance and KID in {space} features",
                    [],
                    [],
                    note=f"Skipped: {groups['skipped']}",
                )
            )
            continue
        out.append(
            Table(
                f"Fréchet distance and KID in {space} features (lower = closer)",
                ["", "FD synthetic [95 % CI]", "FD real B [95 % CI]", "KID synthetic", "KID real B"],
                [
                    [
                        _label(g),
                        ci(get(v, "fd", "synth")),
                        ci(get(v, "fd", "baseline")),
                        pm(get(v, "kid", "synth", "mean"), get(v, "kid", "synth", "std"), ".3g"),
                        pm(get(v, "kid", "baseline", "mean"), get(v, "kid", "baseline", "std"), ".3g"),
                    ]
                    for g, v in groups.items()
                ],
                note="Both columns compare with real half A at equal sample sizes; per-class FDs on few "
                "images are biased upwards, so read them against the real B column.",
            )
        )
    return out


def diversity(d: dict) -> list[Table]:
    ms = d.get("msssim") or {}
    col = d.get("collapse") or {}
    rows = []
    for c, v in ms.items():
        cc = col.get(c) or {}
        flag = cc.get("collapsed") if isinstance(cc, dict) else None
        rows.append(
            [
                _label(c),
                pm(get(v, "synth", "mean"), get(v, "synth", "std"), ".2f"),
                pm(get(v, "real", "mean"), get(v, "real", "std"), ".2f"),
                f(cc.get("coverage"), ".2f") if isinstance(cc, dict) else f(None),
                Cell(
                    "collapsed" if flag else "ok" if flag is not None else "—",
                    title=str(cc.get("message") or cc.get("skipped") or ""),
                    cls="bad" if flag else "good" if flag is not None else "",
                ),
            ]
        )
    out = [
        Table(
            "MS-SSIM within each class (higher = less diverse)",
            ["class", "synthetic", "real A", "coverage", "collapse check"],
            rows,
        )
    ]
    p = d.get("prdc") or {}
    keys = ("precision", "recall", "density", "coverage")
    out.append(
        Table(
            f"Precision / recall / density / coverage in {d.get('feature_space', '')} features",
            [""] + [f"{k} synth" for k in keys] + [f"{k} real B" for k in keys],
            [
                [_label(g)]
                + [f(get(v, "synth", k), ".2f") for k in keys]
                + [f(get(v, "baseline", k), ".2f") for k in keys]
                for g, v in p.items()
            ],
            note="Naeem et al. 2020, k nearest neighbours; real B shows what two real samples score.",
        )
    )
    return out


def class_fidelity(d: dict, classes: list[str]) -> list[Table]:
    rr = d.get("recognition_rate") or {}
    base = get(d, "real_test_baseline", "recognition_rate") or {}
    rows = [[_label(c), f(rr.get(c), ".0%"), f(base.get(c), ".0%")] for c in classes]
    rows.append(
        [
            Cell("balanced", cls="label strong"),
            f(d.get("balanced_accuracy"), ".0%"),
            f(get(d, "real_test_baseline", "balanced_accuracy"), ".0%"),
        ]
    )
    return [Table("Recognition rate of the requested class", ["class", "synthetic", "real test"], rows)]


_UMETRICS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc."),
    ("macro_precision", "precision"),
    ("macro_recall", "recall"),
    ("macro_f1", "macro F1"),
)


def utility(d: dict) -> list[Table]:
    out = []
    rows = [
        [
            Cell(str(r.get("model", "")), cls="label"),
            Cell(str(r.get("training_data", "")), cls="label strong"),
            f(r.get("n_train"), "d"),
        ]
        + [pm(r.get(m), r.get(f"{m}_std")) for m, _ in _UMETRICS]
        for r in d.get("table") or []
        if not str(r.get("training_data", "")).startswith("synthetic share")
    ]
    out.append(
        Table(
            "Utility: trained on each set, tested on real (mean ± std over seeds)",
            ["model", "training data", "n train"] + [h for _, h in _UMETRICS],
            rows,
            note=f"Seeds {d.get('seeds')}; {d.get('n_test', '?')} real test images; macro averages over "
            f"classes.",
        )
    )
    sweep = d.get("share_sweep") or []
    if sweep:
        out.append(
            Table(
                "Share sweep (training-set size fixed)",
                ["synthetic share", "n train"] + [h for _, h in _UMETRICS],
                [
                    [f(r.get("share"), ".0%"), f(r.get("n_train"), "d")]
                    + [pm(r.get(m), r.get(f"{m}_std")) for m, _ in _UMETRICS]
                    for r in sweep
                ],
            )
        )
    delta = d.get("recall_delta") or {}
    if delta:
        classes = list(next(iter(delta.values())).keys())
        out.append(
            Table(
                "Recall change per class vs real only",
                ["training data"] + classes,
                [[Cell(n, cls="label")] + [_signed(v.get(c)) for c in classes] for n, v in delta.items()],
            )
        )
    return out


def _signed(v: Any) -> Cell:
    x = num(v)
    if x is None:
        return f(v)
    return Cell(f"{x:+.2f}", cls="num " + ("good" if x > 0.02 else "bad" if x < -0.02 else ""))


def privacy(d: dict) -> list[Table]:
    """One table per representation (pixel, features): synthetic vs train beside real half B vs half A."""
    s, b = d.get("synth") or {}, d.get("baseline") or {}
    if isinstance(b, dict) and "skipped" in b:
        b = {}
    out = []
    for space, label in (
        ("pixel", "pixel space (RMS distance)"),
        ("features", f"{d.get('feature_space', 'feature')} features"),
    ):
        ps, pb = s.get(space), b.get(space) or {}
        if not isinstance(ps, dict):
            continue
        rows = [
            [
                Cell("near-copy rate", cls="label strong"),
                f(ps.get("copy_rate"), ".1%"),
                f(pb.get("copy_rate"), ".1%"),
                f(ps.get("holdout_copy_rate"), ".1%"),
            ],
            [
                Cell("membership-inference AUC", cls="label strong"),
                f(ps.get("membership_auc"), ".3f"),
                f(pb.get("membership_auc"), ".3f"),
                Cell("0.5 = no leak", cls="muted"),
            ],
            [
                Cell("authentic fraction", cls="label"),
                f(get(ps, "authenticity", "synthetic"), ".1%"),
                f(get(pb, "authenticity", "synthetic"), ".1%"),
                f(get(ps, "authenticity", "holdout"), ".1%"),
            ],
            [
                Cell("median NN distance", cls="label"),
                f(get(ps, "nn_distance", "synthetic", "median")),
                f(get(pb, "nn_distance", "synthetic", "median")),
                f(get(ps, "nn_distance", "holdout", "median")),
            ],
            [
                Cell("median NN1/NN2 ratio", cls="label"),
                f(get(ps, "nn_ratio", "synthetic", "median")),
                f(get(pb, "nn_ratio", "synthetic", "median")),
                f(get(ps, "nn_ratio", "holdout", "median")),
            ],
            [
                Cell("copy threshold", cls="label"),
                f(ps.get("copy_threshold")),
                f(pb.get("copy_threshold")),
                Cell(str(ps.get("threshold_source", "")), cls="muted"),
            ],
        ]
        out.append(
            Table(
                f"Privacy audit in {label}",
                ["", "synthetic vs train", "real B vs real A", "held-out real vs train"],
                rows,
                note="Near-copy: closer to a training image than the 5th percentile of held-out real "
                "images' nearest-training distances (so held-out real scores 5 % by construction). "
                "Real B vs real A shows what images that are certainly not copies score.",
            )
        )
    return out


def anomaly(d: dict) -> list[Table]:
    rows = [
        [Cell(str(r.get("method", "")), cls="label"), Cell(str(r.get("training", "")), cls="label")]
        + [f(r.get(k), ".3f") for k in ("accuracy", "precision", "recall", "f1", "auc")]
        for r in d.get("rows") or []
    ]
    return [
        Table(
            "Anomaly detection",
            ["method", "training", "accuracy", "precision", "recall", "F1", "AUC"],
            rows,
            note=str(first(d, "note", default="")),
        )
    ]
