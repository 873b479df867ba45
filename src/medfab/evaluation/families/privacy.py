"""Privacy: are synthetic images copies of training images? Nearest neighbours, copy rate, membership AUC.

``synth`` audits the synthetic set against the real training set with the real test set as held-out
baseline; ``baseline`` audits real half B against real half A the same way (images that are certainly not
copies).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from medfab.evaluation.families.base import Loose, Num, maybe, try_metric, typed


class Spread(Loose):
    mean: Num = None
    median: Num = None
    p5: Num = None
    min: Num = None


class SynthHoldout(BaseModel):
    synthetic: Spread = Field(default_factory=Spread)
    holdout: Spread = Field(default_factory=Spread)


class Authenticity(Loose):
    synthetic: Num = None
    holdout: Num = None


class SpaceAudit(Loose):
    """:func:`medfab.evaluation.privacy.audit_space` for one representation (per-image lists dropped)."""

    copy_threshold: Num = None
    threshold_source: str = ""
    copy_rate: Num = None
    holdout_copy_rate: Num = None
    membership_auc: Num = None
    nn_distance: SynthHoldout = Field(default_factory=SynthHoldout)
    nn_ratio: SynthHoldout = Field(default_factory=SynthHoldout)
    authenticity: Authenticity = Field(default_factory=Authenticity)


class Audit(Loose):
    copy_rate: Num = None  # pixel space, the headline
    membership_auc: Num = None
    pixel: SpaceAudit | None = None
    features: SpaceAudit | None = None

    def holdout_rate(self) -> float:
        """Near-copy rate of held-out real images: 5 % by construction unless an explicit threshold was used."""
        v = self.pixel.holdout_copy_rate if self.pixel else None
        return v if isinstance(v, float) and v > 0 else 0.05


class PrivacyResult(BaseModel):
    family: Literal["privacy"] = "privacy"
    feature_space: str = ""
    synth: maybe(Audit) = Field(default_factory=Audit)
    baseline: maybe(Audit) = Field(default_factory=Audit)


def compute(ctx) -> tuple[PrivacyResult, list]:
    from medfab.evaluation import plots
    from medfab.evaluation.privacy import privacy_audit

    space = ctx.cfg.features[0]

    def audit(train: str, holdout: str, synth: str, top_k: int) -> dict:
        """The audit of set ``synth`` against ``train``, ``holdout`` the unseen baseline (ctx set names)."""
        return privacy_audit(getattr(ctx, train), getattr(ctx, holdout), getattr(ctx, synth),
                             features_train=ctx.features(space, train), features_holdout=ctx.features(space, holdout),
                             features_synth=ctx.features(space, synth), top_k=top_k, device=ctx.device)

    ctx.step("nearest training neighbours of synthetic images")
    synth = audit("real", "test", "synth", ctx.cfg.gallery)
    ctx.step("real-vs-real baseline")
    base = try_metric(audit, "half_a", "test", "half_b", 1)
    figs = []
    pix = synth.get("pixel") or {}
    pairs = pix.get("closest_pairs") or []
    if pairs:
        si = np.array([p["synth_index"] for p in pairs])
        ti = np.array([p["train_index"] for p in pairs])
        figs.append(
            (
                plots.pair_gallery(
                    ctx.synth.x[si],
                    ctx.real.x[ti],
                    [p["distance"] for p in pairs],
                    ctx.fig("closest_pairs.png"),
                ),
                "The synthetic images closest to a training image (RMS pixel distance d): look for copies",
            )
        )
    if pix.get("synthetic_nn_distances") and pix.get("holdout_nn_distances"):
        dist = {
            "distance to nearest training image": {
                "real": pix["holdout_nn_distances"],
                "synthetic": pix["synthetic_nn_distances"],
            }
        }
        figs.append(
            (
                plots.value_distributions(
                    dist,
                    ctx.fig("nn_distances.png"),
                    title="Memorisation check",
                    xlabel="RMS pixel distance (real = held-out test images)",
                ),
                (
                    "Nearest-training-image distances: synthetic images should not sit closer than "
                    "held-out real ones"
                ),
            )
        )
    data = {"synth": _drop_lists(synth), "baseline": _drop_lists(base), "feature_space": space}
    return typed(PrivacyResult, data), figs


def _drop_lists(d):
    """Privacy dicts without the per-image distance lists (figures only); closest pairs are kept."""
    if not isinstance(d, dict):
        return d
    return {k: _drop_lists(v) for k, v in d.items() if not k.endswith("_nn_distances")}
