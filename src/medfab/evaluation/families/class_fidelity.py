"""Class fidelity: does a classifier trained on real images recognise the class each synthetic image shows?"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medfab.evaluation.families.base import Loose, Num, maybe, typed


class Recognition(Loose):
    """Confusion (rows = requested class) and the recognition rate per class; balanced = their mean."""

    confusion: list[list[float]] = Field(default_factory=list)
    recognition_rate: dict[str, Num] = Field(default_factory=dict)
    balanced_accuracy: Num = None
    missing_classes: list[str] = Field(default_factory=list)


class ClassFidelityResult(Recognition):
    family: Literal["class"] = "class"
    classes: list[str] = Field(default_factory=list)
    real_test_baseline: maybe(Recognition) | None = None  # the same classifier on real test images


def compute(ctx) -> tuple[ClassFidelityResult, list]:
    from medfab.evaluation import plots
    from medfab.evaluation.class_fidelity import class_fidelity

    ctx.step("training the real-image classifier")
    net = ctx.featurenet().model if ctx.cfg.classifiers == "featurenet" else None  # reuse: one CNN fewer
    data = class_fidelity(ctx.real, ctx.synth, seed=ctx.cfg.seed, epochs=ctx.cfg.epochs, real_test=ctx.test,
                          device=ctx.device, classifier=net)
    figs = [
        (
            plots.confusion_matrix(data["confusion"], ctx.classes, ctx.fig("confusion.png")),
            "Synthetic images classified by a CNN trained on real images (row-normalised)",
        )
    ]
    base = data.get("real_test_baseline")
    if isinstance(base, dict) and "confusion" in base:
        figs.append(
            (
                plots.confusion_matrix(
                    base["confusion"],
                    ctx.classes,
                    ctx.fig("confusion_real.png"),
                    title="Baseline: real test images, same classifier",
                ),
                "The same classifier on real test images: how well real images are recognised",
            )
        )
    return typed(ClassFidelityResult, data), figs
