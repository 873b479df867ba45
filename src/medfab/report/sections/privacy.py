"""Privacy section: near-copies of training images, membership inference, each beside real half B."""

from __future__ import annotations

from medfab.evaluation.families.base import Skipped
from medfab.evaluation.families.privacy import Audit, PrivacyResult, SpaceAudit
from medfab.report.tables import Cell, Table, f
from medfab.report.verdicts import Verdict, num

RESULT = PrivacyResult
TITLE = "Privacy: are they copies of training images?"
INTRO = (
    "Distances from synthetic images to their nearest training image, compared with held-out real images, and "
    "a membership-inference attack."
)


def _audit(a) -> Audit:
    return a if isinstance(a, Audit) else Audit()


def tables(r: PrivacyResult, res=None) -> list[Table]:
    """One table per representation (pixel, features): synthetic vs train beside real half B vs half A."""
    s, b = _audit(r.synth), _audit(r.baseline)
    out = []
    for space, name in (
        ("pixel", "pixel space (RMS distance)"),
        ("features", f"{r.feature_space or 'feature'} features"),
    ):
        ps: SpaceAudit | None = getattr(s, space)
        pb = getattr(b, space) or SpaceAudit()
        if ps is None:
            continue
        rows = [
            [
                Cell("near-copy rate", cls="label strong"),
                f(ps.copy_rate, ".1%"),
                f(pb.copy_rate, ".1%"),
                f(ps.holdout_copy_rate, ".1%"),
            ],
            [
                Cell("membership-inference AUC", cls="label strong"),
                f(ps.membership_auc, ".3f"),
                f(pb.membership_auc, ".3f"),
                Cell("0.5 = no leak", cls="muted"),
            ],
            [
                Cell("authentic fraction", cls="label"),
                f(ps.authenticity.synthetic, ".1%"),
                f(pb.authenticity.synthetic, ".1%"),
                f(ps.authenticity.holdout, ".1%"),
            ],
            [
                Cell("median NN distance", cls="label"),
                f(ps.nn_distance.synthetic.median),
                f(pb.nn_distance.synthetic.median),
                f(ps.nn_distance.holdout.median),
            ],
            [
                Cell("median NN1/NN2 ratio", cls="label"),
                f(ps.nn_ratio.synthetic.median),
                f(pb.nn_ratio.synthetic.median),
                f(ps.nn_ratio.holdout.median),
            ],
            [
                Cell("copy threshold", cls="label"),
                f(ps.copy_threshold),
                f(pb.copy_threshold),
                Cell(ps.threshold_source, cls="muted"),
            ],
        ]
        out.append(
            Table(
                f"Privacy audit in {name}",
                ["", "synthetic vs train", "real B vs real A", "held-out real vs train"],
                rows,
                note="Near-copy: closer to a training image than the 5th percentile of held-out real images' "
                "nearest-training distances (so held-out real scores 5 % by construction). Real B vs real A "
                "shows what images that are certainly not copies score.",
            )
        )
    return out


def _copy_level(cr: float, ref: float) -> str:
    return "good" if cr <= 2 * ref else "warn" if cr <= 3 * ref else "bad"


def verdicts(r: PrivacyResult, res=None) -> list[Verdict]:
    """Copy rate at most 2x the held-out real images' rate (5 % by construction) is good, up to 3x a warning,
    beyond that bad; membership AUC above 0.6 is bad, above 0.55 a warning. Real half B much closer to half A
    than held-out images are means the training set holds near-duplicates (e.g. neighbouring slices of one
    subject): said plainly, since it makes every copy figure harder to read."""
    s, b = _audit(r.synth), _audit(r.baseline)
    out = []
    ref = s.holdout_rate()
    cr, crb = num(s.copy_rate), num(b.copy_rate)
    if cr is not None:
        out.append(
            Verdict(
                _copy_level(cr, ref),
                f"{cr:.1%} of synthetic images are near-copies of a training image "
                f"(held-out real images: {ref:.1%}).",
            )
        )
    if crb is not None and crb > 3 * ref:
        out.append(
            Verdict(
                "warn",
                f"{crb:.0%} of real half B are near-copies of half A (held-out real: {ref:.0%}): the training set "
                f"holds near-duplicate images, e.g. neighbouring slices of one subject, so split by subject.",
            )
        )
    auc, aucb = num(s.membership_auc), num(b.membership_auc)
    if auc is not None:
        level = "good" if auc <= 0.55 else "warn" if auc <= 0.6 else "bad"
        text = f"Membership inference AUC {auc:.2f} (0.5 = an attacker cannot tell training images from unseen ones"
        text += f"; real half B in place of the synthetic set: {aucb:.2f})." if aucb is not None else ")."
        if aucb is not None and aucb > 0.6:
            # The attack scores real images too: held-out images differ from training ones (another split
            # distribution, other subjects), so part of the AUC measures that shift, not memorisation.
            text += (
                " Even real images score far above 0.5: the held-out images differ from the training set, "
                "so read the synthetic AUC against that baseline."
            )
        out.append(Verdict(level, text))
    return out


def cards(r: PrivacyResult, res=None) -> list:
    s = _audit(r.synth)
    cr = num(s.copy_rate)
    if cr is None:
        return []
    return [("Copy rate", f"{cr:.1%}", _copy_level(cr, s.holdout_rate()))]


__all__ = ["Skipped", "cards", "tables", "verdicts"]
