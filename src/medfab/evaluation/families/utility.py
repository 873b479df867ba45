"""Utility: does training on synthetic images help a classifier on real test images (train synthetic, test real)?"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from medfab.evaluation.families.base import Loose, Num, typed

METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")


class Scores(Loose):
    """One row: metrics and their ``<metric>_std`` over seeds (extra keys: the row's other fields)."""

    accuracy: Num = None
    balanced_accuracy: Num = None
    macro_precision: Num = None
    macro_recall: Num = None
    macro_f1: Num = None

    def std(self, metric: str) -> Any:
        return getattr(self, f"{metric}_std", None)


class TableRow(Scores):
    model: str = ""
    training_data: str = ""
    n_train: int | None = None


class SweepRow(Scores):
    share: Num = None
    n_train: int | None = None


class Regime(Loose):
    n_train: int | None = None
    mean: Scores = Field(default_factory=Scores)
    std: Scores = Field(default_factory=Scores)


class Ratio(Loose):
    balanced_accuracy: Num = None
    macro_f1: Num = None
    goal: Num = None


class UtilityResult(Loose):
    family: Literal["utility"] = "utility"
    classes: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=list)
    n_test: int | None = None
    regimes: dict[str, Regime] = Field(default_factory=dict)
    table: list[TableRow] = Field(default_factory=list)
    share_sweep: list[SweepRow] = Field(default_factory=list)
    ratio_to_real: Ratio = Field(default_factory=Ratio)
    recall_delta: dict[str, dict[str, Num]] = Field(default_factory=dict)  # regime -> class -> change
    notes: list[str] = Field(default_factory=list)

    def main_rows(self) -> list[TableRow]:
        """The table without the share-sweep rows (they have their own table)."""
        return [r for r in self.table if not r.training_data.startswith("synthetic share")]


def compute(ctx) -> tuple[UtilityResult, list]:
    from medfab.evaluation.utility import utility_study

    cfg = ctx.cfg
    fast = cfg.classifiers == "featurenet"  # logistic regressions on the cached FeatureNet features
    feats = tuple(ctx.features("featurenet", w) for w in ("real", "test", "synth")) if fast else None
    ctx.step(f"training {'classifiers on features' if fast else 'CNNs'} ({cfg.seeds} seed(s))")
    data = utility_study(
        ctx.real,
        ctx.test,
        ctx.synth,
        seeds=tuple(range(cfg.seed, cfg.seed + cfg.seeds)),
        shares=tuple(cfg.shares),
        epochs=cfg.epochs,
        progress=False,
        device=ctx.device,
        model="features" if fast else "cnn",
        features=feats,
    )
    return typed(UtilityResult, data), figures(data, ctx)


def figures(data: dict, ctx) -> list:
    """Bars of the main regimes and the share-sweep curve (utility_study's ``table`` / ``share_sweep``)."""
    from medfab.evaluation import plots

    figs = []
    rows = [
        r for r in data.get("table", []) if not str(r.get("training_data", "")).startswith("synthetic share")
    ]
    metrics = [m for m in ("balanced_accuracy", "macro_f1", "accuracy") if rows and m in rows[0]]
    if rows and metrics:
        figs.append(
            (
                plots.utility_bars(rows, metrics, ctx.fig("utility.png")),
                (f"{rows[0].get('model', 'classifier')} trained on each training set, tested on the real "
                 "test set (error bars: std over seeds)"),
            )
        )
    sweep = data.get("share_sweep") or []
    curves = {
        m: ([r[m] for r in sweep], [r.get(f"{m}_std", 0.0) for r in sweep])
        for m in ("balanced_accuracy", "macro_f1")
        if sweep and m in sweep[0]
    }
    if curves:
        figs.append(
            (
                plots.share_sweep([r["share"] for r in sweep], curves, ctx.fig("share_sweep.png")),
                "Score on real test images as the synthetic share of a fixed-size training set grows",
            )
        )
    return figs
