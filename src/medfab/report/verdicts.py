"""Plain-language verdicts: one or more sentences per report section, each graded good / warn / bad / info.

Every verdict compares a synthetic figure with the same figure between two halves of the real data (or with
the real-data regime), so "good" means "about as far from real as real is from itself". The rules are simple
and written next to each function; they guide a reader, they do not replace the numbers beside them.
Input is the plain JSON dict of ``results.json`` (see :mod:`medfab.evaluation.results`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["good", "warn", "bad", "info"]


@dataclass
class Verdict:
    level: Level
    text: str


def num(v: Any) -> float | None:
    """A finite number, or None for a missing/skipped value (``{"skipped": ...}``)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def get(d: Any, *path, default=None):
    """``d[path[0]][path[1]]...`` or ``default`` when any step is missing."""
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def first(d: Any, *keys, default=None):
    """The value of the first key of ``keys`` present in ``d`` (tolerates renamed fields)."""
    if isinstance(d, dict):
        for k in keys:
            if k in d:
                return d[k]
    return default


def _fam(res: dict, name: str) -> dict | None:
    f = get(res, "families", name)
    return f.get("data") if isinstance(f, dict) and f.get("status") == "ok" else None


def fidelity(res: dict) -> list[Verdict]:
    """Histogram JS within 2x (+0.002) of real-vs-real is good; FD whose interval overlaps the baseline's is
    good, below 2x the baseline a warning, beyond that bad."""
    d = _fam(res, "fidelity")
    if d is None:
        return []
    out = []
    js_s, js_b = (
        num(get(d, "histograms", "overall", "synth", "js")),
        num(get(d, "histograms", "overall", "baseline", "js")),
    )
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
        far = [
            g
            for g, v in d["histograms"].items()
            if g != "overall"
            and (num(get(v, "synth", "js")) or 0) > 3 * (num(get(v, "baseline", "js")) or 0) + 0.005
        ]
        if far:
            out.append(Verdict("warn", f"Intensities differ most for {', '.join(far)}."))
    ks_s, ks_b = (num(get(d, "brain_mass", "groups", "overall", k, "ks")) for k in ("synth", "baseline"))
    m_r, m_s = (
        num(get(d, "brain_mass", "groups", "overall", "synth", k)) for k in ("real_mean", "synth_mean")
    )
    if None not in (ks_s, ks_b, m_r, m_s):
        level = "good" if ks_s <= max(2 * ks_b, ks_b + 0.05) else "warn"
        out.append(
            Verdict(
                level,
                f"Brain mass: synthetic {m_s:.1%} vs real {m_r:.1%} of the image on average "
                f"(KS {ks_s:.2f} vs {ks_b:.2f} between real halves).",
            )
        )
    for space, groups in (d.get("distances") or {}).items():
        s, b = get(groups, "overall", "fd", "synth"), get(groups, "overall", "fd", "baseline")
        v, vb = num(get(s, "value")), num(get(b, "value"))
        if v is None or vb is None:
            continue
        lo, hi_b = num(get(s, "lo")) or v, num(get(b, "hi")) or vb
        if lo <= hi_b:
            out.append(
                Verdict(
                    "good",
                    f"Fréchet distance in {space} features is within the real-vs-real range "
                    f"({v:.3g} vs {vb:.3g}).",
                )
            )
        else:
            r = v / max(vb, 1e-12)
            out.append(
                Verdict(
                    "warn" if r < 2 else "bad",
                    f"Fréchet distance in {space} features is {r:.1f}x the real-vs-real one "
                    f"({v:.3g} vs {vb:.3g}).",
                )
            )
    return out


def diversity(res: dict) -> list[Verdict]:
    """Each collapsed class (collapse_check's rule) is bad; recall/coverage below 0.7x real-vs-real warns."""
    d = _fam(res, "diversity")
    if d is None:
        return []
    out = []
    collapsed = {
        c: v for c, v in (d.get("collapse") or {}).items() if isinstance(v, dict) and v.get("collapsed")
    }
    for c, v in collapsed.items():
        ms, mr = num(v.get("msssim_synth")), num(v.get("msssim_real"))
        cov = num(v.get("coverage"))
        detail = f"MS-SSIM {ms:.2f} vs {mr:.2f} real" if ms is not None and mr is not None else ""
        if cov is not None:
            detail += f"{', ' if detail else ''}coverage {cov:.0%}"
        out.append(Verdict("bad", f"Warning: {c} looks collapsed ({detail})."))
    if d.get("collapse") and not collapsed:
        out.append(
            Verdict("good", "No class looks collapsed: synthetic images vary about as much as real ones.")
        )
    s, b = get(d, "prdc", "overall", "synth"), get(d, "prdc", "overall", "baseline")
    names = [
        ("recall", "recall (how much of the real variety is reproduced)"),
        ("coverage", "coverage"),
        ("precision", "precision (how realistic)"),
    ]
    for key, label in names:
        v, vb = num(get(s, key)), num(get(b, key))
        if v is None or vb is None:
            continue
        if v < 0.7 * vb:
            out.append(Verdict("warn", f"Low {label}: {v:.2f} vs {vb:.2f} between real halves."))
    if not any(v.level == "warn" for v in out) and num(get(s, "recall")) is not None:
        out.append(
            Verdict(
                "good",
                f"Precision {get(s, 'precision'):.2f} / recall {get(s, 'recall'):.2f} are "
                f"close to real-vs-real ({get(b, 'precision', default=0):.2f} / "
                f"{get(b, 'recall', default=0):.2f}).",
            )
        )
    return out


def class_fidelity(res: dict) -> list[Verdict]:
    """Recognition of synthetic images at >= 90 % of the real test images' rate is good, >= 60 % a warning."""
    d = _fam(res, "class")
    if d is None:
        return []
    s, b = num(d.get("balanced_accuracy")), num(get(d, "real_test_baseline", "balanced_accuracy"))
    if s is None:
        return []
    if b is None:
        return [
            Verdict(
                "info",
                f"A classifier trained on real images recognises the requested class of "
                f"{s:.0%} of synthetic images (balanced).",
            )
        ]
    k = max(2, len(res.get("classes") or []))
    if b <= 1 / k + 0.05:
        return [
            Verdict(
                "warn",
                f"The classifier recognises real test images only at chance level ({b:.0%}, "
                f"chance {1 / k:.0%}), so class fidelity ({s:.0%}) says little: train it longer "
                f"(--epochs) or on more images.",
            )
        ]
    level = "good" if s >= 0.9 * b else "warn" if s >= 0.6 * b else "bad"
    out = [
        Verdict(
            level,
            f"A classifier trained on real images recognises the requested class of {s:.0%} of "
            f"synthetic images (real test images: {b:.0%}).",
        )
    ]
    rates = d.get("recognition_rate") or {}
    low = [f"{c} ({r:.0%})" for c, r in rates.items() if num(r) is not None and r < 0.5 * b]
    if low:
        out.append(Verdict("warn", f"Rarely recognised: {', '.join(low)}."))
    return out


def utility(res: dict) -> list[Verdict]:
    """Synthetic-only at >= the study's goal ratio (0.9) of real is good, >= 0.7 a warning, below bad."""
    d = _fam(res, "utility")
    if d is None:
        return []
    r = d.get("ratio_to_real") or {}
    ba, goal = num(r.get("balanced_accuracy")), num(r.get("goal")) or 0.9
    out = []
    real_ba = num(get(d, "regimes", "real", "mean", "balanced_accuracy"))
    k = max(2, len(res.get("classes") or []))
    if real_ba is not None and real_ba <= 1 / k + 0.05:
        return [
            Verdict(
                "warn",
                f"Even the classifier trained on real images is at chance level on the real test "
                f"set (balanced accuracy {real_ba:.0%}, chance {1 / k:.0%}), so the utility ratios "
                f"say little: use more images or more --epochs.",
            )
        ]
    if ba is not None:
        level = "good" if ba >= goal else "warn" if ba >= 0.7 else "bad"
        f1 = num(r.get("macro_f1"))
        out.append(
            Verdict(
                level,
                f"A classifier trained on synthetic images only reaches {ba:.0%} of the real-"
                f"trained one's balanced accuracy"
                + (f" ({f1:.0%} of its macro-F1)" if f1 else "")
                + f"; the goal is {goal:.0%}.",
            )
        )
    for name, delta in (d.get("recall_delta") or {}).items():
        vals = {c: v for c, v in delta.items() if num(v) is not None}
        if vals:
            best = max(vals, key=vals.get)
            if vals[best] > 0.05:
                out.append(
                    Verdict("good", f"{name}: recall of {best} rises by {vals[best]:+.2f} over real only.")
                )
    for note in d.get("notes") or []:
        out.append(Verdict("info", note))
    return out


def privacy(res: dict) -> list[Verdict]:
    """Copy rate at most 2x the held-out real images' rate (5 % by construction) is good, up to 3x a warning,
    beyond that bad; membership AUC above 0.6 is bad, above 0.55 a warning. Real half B much closer to half A
    than held-out images are means the training set holds near-duplicates (e.g. neighbouring slices of one
    subject): said plainly, since it makes every copy figure harder to read."""
    d = _fam(res, "privacy")
    if d is None:
        return []
    s, b = d.get("synth") or {}, d.get("baseline") or {}
    out = []
    cr, crb = num(first(s, "copy_rate")), num(first(b, "copy_rate"))
    if cr is not None:
        ref = _holdout_rate(s)
        level = "good" if cr <= 2 * ref else "warn" if cr <= 3 * ref else "bad"
        out.append(
            Verdict(
                level,
                f"{cr:.1%} of synthetic images are near-copies of a training image "
                f"(held-out real images: {ref:.1%}).",
            )
        )
    if crb is not None and crb > 3 * _holdout_rate(s):
        out.append(
            Verdict(
                "warn",
                f"{crb:.0%} of real half B are near-copies of half A (held-out real: "
                f"{_holdout_rate(s):.0%}): the training set holds near-duplicate images, "
                f"e.g. neighbouring slices of one subject, so split by subject.",
            )
        )
    auc = num(first(s, "membership_auc", "mia_auc"))
    aucb = num(first(b, "membership_auc", "mia_auc"))
    if auc is not None:
        level = "good" if auc <= 0.55 else "warn" if auc <= 0.6 else "bad"
        text = f"Membership inference AUC {auc:.2f} (0.5 = an attacker cannot tell training images from unseen ones"
        text += f"; real half B in place of the synthetic set: {aucb:.2f})." if aucb is not None else ")."
        if aucb is not None and aucb > 0.6:
            # The attack scores real images too: held-out images differ from training ones (another split
            # distribution, other subjects), so part of the AUC measures that shift, not memorisation.
            text += (" Even real images score far above 0.5: the held-out images differ from the training set, "
                     "so read the synthetic AUC against that baseline.")
        out.append(Verdict(level, text))
    return out


def _holdout_rate(s: dict) -> float:
    """Near-copy rate of held-out real images: 5 % by construction unless an explicit threshold was used."""
    v = num(get(s, "pixel", "holdout_copy_rate"))
    return v if v is not None and v > 0 else 0.05


def headline(res: dict) -> list[tuple[str, str, Level]]:
    """Summary cards: (label, value, level) for utility, copy rate, collapse and class fidelity."""
    cards: list[tuple[str, str, Level]] = []
    u = _fam(res, "utility")
    ba = num(get(u, "ratio_to_real", "balanced_accuracy"))
    if ba is not None:
        goal = num(get(u, "ratio_to_real", "goal")) or 0.9
        real_ba = num(get(u, "regimes", "real", "mean", "balanced_accuracy"))
        if real_ba is not None and real_ba <= 1 / max(2, len(res.get("classes") or [])) + 0.05:
            cards.append(("Synthetic-only utility", "n/a (real at chance)", "warn"))
        else:
            cards.append(
                (
                    "Synthetic-only utility",
                    f"{ba:.0%} of real",
                    "good" if ba >= goal else "warn" if ba >= 0.7 else "bad",
                )
            )
    p = _fam(res, "privacy")
    cr = num(first(get(p, "synth"), "copy_rate"))
    if cr is not None:
        ref = _holdout_rate(get(p, "synth"))
        cards.append(
            ("Copy rate", f"{cr:.1%}", "good" if cr <= 2 * ref else "warn" if cr <= 3 * ref else "bad")
        )
    dv = _fam(res, "diversity")
    if dv is not None and dv.get("collapse"):
        bad = [c for c, v in dv["collapse"].items() if isinstance(v, dict) and v.get("collapsed")]
        cards.append(("Collapse warnings", ", ".join(bad) if bad else "none", "bad" if bad else "good"))
    cf = _fam(res, "class")
    s = num(get(cf, "balanced_accuracy"))
    if s is not None:
        b = num(get(cf, "real_test_baseline", "balanced_accuracy"))
        chance = 1 / max(2, len(res.get("classes") or []))
        if b is None:
            level = "info"
        elif b <= chance + 0.05:  # even real images are not recognised: the figure says little
            level = "warn"
        else:
            level = "good" if s >= 0.9 * b else "warn"
        real = f" (real {b:.0%})" if b is not None else ""
        cards.append(("Class recognised", f"{s:.0%}{real}", level))
    return cards


SECTIONS = {
    "fidelity": fidelity,
    "diversity": diversity,
    "class": class_fidelity,
    "utility": utility,
    "privacy": privacy,
}
