"""``medfab evaluate``: load real-train, real-test and synthetic sets, run every metric family, write results.

The orchestration only: the metrics live in their own modules (histograms, brain_mass, distances, features,
diversity, prdc, class_fidelity, utility, privacy) and the families that call them in
:mod:`medfab.evaluation.families`. Output folder ``EVAL``::

    EVAL/results.json       versioned results (see medfab.evaluation.results), every number finite
    EVAL/eval_config.json   the resolved EvalConfig
    EVAL/figures/*.png      figures referenced from results.json
    EVAL/featurenet/        the feature network trained on the real training set for this evaluation
    EVAL/errors.log         tracebacks of families that failed with an unexpected error

Input errors (missing folders, different class names or image sizes, an unreadable extractor) stop at once
with a MedfabError. After loading, a family that fails is recorded in results.json and the others still run.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError
from medfab.evaluation.results import FAMILIES, FAMILIES_3D, FamilyResult, Figure, Results, write_results

FEATURE_SETS = ("featurenet", "pixel", "radiomic", "user")
_PARENT = {"half_a": "real", "half_b": "real", "synth_m": "synth"}  # subsets whose features are sliced


class EvalConfig(BaseModel):
    """Every option of an evaluation; saved as ``EVAL/eval_config.json`` after :meth:`resolved`."""

    model_config = ConfigDict(extra="forbid")

    real_train: str
    real_test: str | None = None  # required for 2D images; for 3D volumes it is the privacy reference
    synthetic: str
    out: str
    size: int = Field(64, ge=16)
    fit: Literal["pad", "crop_head"] = "pad"  # real images only: synthetic ones are already at the model's size
    dims: Literal[2, 3] | None = None  # None: 3 when the synthetic folder holds 3D NIfTI volumes
    real_seg_volumes: str | None = None  # 3D: DLMUSE seg_volumes.csv of the real set (tissue volumes)
    max_per_class: int | None = Field(None, ge=4)  # cap per class and set (seeded), for speed
    families: list[str] = list(FAMILIES)
    features: list[str] = ["featurenet", "pixel", "radiomic"]  # FD/KID spaces; the first also feeds PRDC
    #                                                           and privacy ("user" is added by --extractor)
    extractor: str | None = None  # a user feature extractor file (TorchScript/safetensors)
    seeds: int = Field(3, ge=1)  # classifier seeds in the utility study
    epochs: int = Field(15, ge=1)  # epochs of every CNN trained here
    seed: int = 0
    quick: bool = False
    n_boot: int = Field(100, ge=10)  # bootstrap resamples for FD intervals
    kid_subset: int = Field(100, ge=2)
    kid_subsets: int = Field(50, ge=1)
    msssim_pairs: int = Field(200, ge=2)
    shares: list[float] = [0.0, 0.25, 0.5, 0.75, 1.0]
    gallery: int = Field(8, ge=1)  # closest pairs / sample images shown per row
    device: str = "auto"  # where networks and neighbour searches run: auto (CUDA when present), cpu, cuda[:K]
    # "featurenet": class fidelity reuses the feature network (a SmallCNN trained on real half A) and the utility
    # study fits logistic regressions on its cached features (minutes); "cnn": a CNN trained from scratch for class
    # fidelity and for every utility regime and seed (about 22 CNN trainings: hours on a 2-core laptop).
    classifiers: Literal["featurenet", "cnn"] = "featurenet"

    @field_validator("families")
    @classmethod
    def _known_families(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in FAMILIES + FAMILIES_3D]
        if bad:
            raise ValueError(f"unknown families {bad}; choose from {list(FAMILIES + FAMILIES_3D)}")
        return v

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in FEATURE_SETS]
        if bad:
            raise ValueError(f"unknown feature sets {bad}; choose from {list(FEATURE_SETS)}")
        return v

    def resolved(self) -> EvalConfig:
        """Apply ``--quick`` (small samples, 1 seed, few epochs, FeatureNet only) and the extractor."""
        upd: dict = {}
        if self.quick:
            upd = {
                "max_per_class": min(self.max_per_class or 48, 48),
                "seeds": 1,
                "epochs": min(self.epochs, 10),
                "n_boot": min(self.n_boot, 10),
                "kid_subsets": min(self.kid_subsets, 10),
                "msssim_pairs": min(self.msssim_pairs, 24),
                "shares": [0.0, 0.5, 1.0],
                "features": [f for f in self.features if f != "radiomic"] or ["featurenet"],
            }
        feats = list(upd.get("features", self.features))
        if self.extractor and "user" not in feats:
            feats.append("user")
        if not self.extractor and "user" in feats:
            feats.remove("user")
        upd["features"] = feats
        return self.model_copy(update=upd)


@dataclass
class Context:
    """What every family reads: the loaded sets, the two real halves and cached features."""

    cfg: EvalConfig
    out: Path
    real: TensorSet  # real training set (capped)
    test: TensorSet  # real test set (capped)
    synth: TensorSet  # synthetic set (capped)
    half_a: TensorSet  # reference real half
    half_b: TensorSet  # the other real half: the real-vs-real baseline
    synth_m: TensorSet  # synthetic subset with half B's class counts: same sample sizes as the baseline
    #                     (both capped per class at min(half B, synthetic))
    step: Callable[[str], None] = lambda s: None
    extractors: dict = field(default_factory=dict)
    _feat: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return self.real.classes

    @property
    def device(self):
        """The torch device of ``cfg.device`` (checked when the evaluation starts)."""
        from medfab.device import resolve_device

        return resolve_device(self.cfg.device)

    def featurenet(self):
        """The feature network fitted on real half A (fitted on first use, then shared by every family)."""
        if "featurenet" not in self.extractors:
            self.features("featurenet", "half_a")
        return self.extractors["featurenet"]

    def features(self, space: str, which: str) -> np.ndarray:
        """Features (N, F) of set ``which`` ("real", "test", "synth", "half_a", "half_b", "synth_m")."""
        key = (space, which)
        if key in self._feat:
            return self._feat[key]
        parent = _PARENT.get(which)
        siblings = [w for w, p in _PARENT.items() if p == parent and (space, w) in self._feat]
        if parent and not siblings and (space, parent) not in self._feat:
            self.features(space, parent)  # extract the whole set once; its subsets are slices (privacy needs it)
        if (space, parent) in self._feat:  # a subset of a set already extracted: slice, don't extract twice
            pos = {k: i for i, k in enumerate(getattr(self, parent).keys)}
            if len(pos) == len(getattr(self, parent).keys):  # keys unique, so rows are well defined
                self._feat[key] = self._feat[(space, parent)][[pos[k] for k in getattr(self, which).keys]]
                return self._feat[key]
        ext = self.extractors.get(space)
        if ext is None:
            from medfab.evaluation.families import make_extractor

            self.step(f"fitting the {space} feature extractor")
            ext = self.extractors[space] = make_extractor(space, self)
        if key not in self._feat:  # make_extractor may have stored the real set's features already
            self.step(f"{space} features of {which}")
            self._feat[key] = np.asarray(ext.transform(getattr(self, which).x), dtype=np.float64)
        return self._feat[key]

    def fig(self, name: str) -> Path:
        return self.out / "figures" / name


def load_sets(cfg: EvalConfig, *, progress: bool = True) -> tuple[TensorSet, TensorSet, TensorSet]:
    """Load the three sets at ``cfg.size`` and check that they can be compared; cap per class (seeded)."""
    from medfab.data import load_tensors
    from medfab.data.preprocess import fit_option
    from medfab.evaluation.baseline import cap_per_class

    sets = {}
    for name, path in (
        ("real train", cfg.real_train),
        ("real test", cfg.real_test),
        ("synthetic", cfg.synthetic),
    ):
        if not Path(path).exists():
            raise MedfabError(
                f"the {name} folder {path} does not exist",
                "give a folder with one sub-folder of images per class",
            )
        pre = fit_option(cfg.fit, cfg.size) if name.startswith("real") else None
        sets[name] = load_tensors(path, size=cfg.size, preprocess=pre, progress=progress)
    train, test, synth = check_compatible(sets["real train"], sets["real test"], sets["synthetic"])
    return (
        cap_per_class(train, cfg.max_per_class, seed=cfg.seed),
        cap_per_class(test, cfg.max_per_class, seed=cfg.seed + 1),
        cap_per_class(synth, cfg.max_per_class, seed=cfg.seed + 2),
    )


def check_compatible(train: TensorSet, test: TensorSet, synth: TensorSet) -> tuple[TensorSet, ...]:
    """Same class names in all three sets (re-indexed onto the real-train order) and one image size."""
    from medfab.evaluation.checks import check_images, check_same_size

    for name, ts in (("real train", train), ("real test", test), ("synthetic", synth)):
        check_images(ts.x, f"{name} images", min_n=1)
    for name, ts in (("real test", test), ("synthetic", synth)):
        extra = sorted(set(ts.classes) - set(train.classes))
        missing = sorted(set(train.classes) - set(ts.classes))
        if extra or missing:
            parts = ([f"only in {name}: {extra}"] if extra else []) + (
                [f"missing from {name}: {missing}"] if missing else []
            )
            raise MedfabError(
                f"class names differ between real train {train.classes} and {name} {sorted(ts.classes)} "
                f"({'; '.join(parts)})",
                "use the same class folder names (same spelling and case) in all three sets",
            )
        check_same_size(train.x, ts.x, ("real train", name))
    for name, ts in (("real train", train), ("real test", test), ("synthetic", synth)):
        few = [c for c, n in ts.counts().items() if n < 2]
        if few:
            raise MedfabError(
                f"{name} has fewer than 2 images of class(es) {few}",
                "every class needs at least 2 images in each set (a few hundred for stable figures)",
            )
    return train, test.with_classes(train.classes), synth.with_classes(train.classes)


def evaluate(cfg: EvalConfig, *, progress: bool = True) -> Results:
    """Run the evaluation described by ``cfg`` and write ``cfg.out``; returns the results."""
    import medfab
    from medfab.evaluation import families as fam
    from medfab.evaluation.baseline import match_counts, split_halves

    cfg = cfg.resolved()
    from medfab.device import resolve_device

    resolve_device(cfg.device)  # a bad or absent --device stops here, before any loading
    if cfg.dims is None:  # 3D when the synthetic folder holds NIfTI volumes
        from medfab.evaluation.volumes.io import is_volume_folder

        cfg = cfg.model_copy(update={"dims": 3 if is_volume_folder(cfg.synthetic) else 2})
    if cfg.dims == 3:
        from medfab.evaluation.volumes.run import evaluate_volumes

        return evaluate_volumes(cfg, progress=progress)
    if cfg.real_test is None:
        raise MedfabError("--real-test is missing", "give --real-test DIR: real images the generator never saw")
    if "volumes" in cfg.families:
        raise MedfabError("the volumes family measures 3D volumes", "give NIfTI volumes (or --dims 3)")
    out = Path(cfg.out)
    extractors = {}
    if cfg.extractor:  # a bad extractor file is bad input: stop before hours of work
        from medfab.evaluation.features.user_extractor import load_extractor

        if not Path(cfg.extractor).is_file():
            raise MedfabError(
                f"extractor file {cfg.extractor} does not exist",
                "give a TorchScript (.pt) or safetensors (+ .json sidecar) feature extractor",
            )
        extractors["user"] = load_extractor(cfg.extractor)
    real, test, synth = load_sets(cfg, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / "errors.log").unlink(missing_ok=True)  # a re-run must not show the tracebacks of the last one
    (out / "eval_config.json").write_text(json.dumps(cfg.model_dump(), indent=1))
    half_a, half_b = split_halves(real, seed=cfg.seed)
    # equal sizes per class for both comparisons with half A (a small synthetic class shrinks half B too)
    n = {c: min(half_b.counts()[c], synth.counts()[c]) for c in real.classes}
    half_b, synth_m = match_counts(half_b, n, seed=cfg.seed), match_counts(synth, n, seed=cfg.seed)
    ctx = Context(cfg, out, real, test, synth, half_a, half_b, synth_m, extractors=extractors)

    res = Results(
        medfab_version=medfab.__version__,
        config=cfg.model_dump(),
        classes=real.classes,
        counts={
            "real_train": real.counts(),
            "real_test": test.counts(),
            "synthetic": synth.counts(),
            "real_half_a": half_a.counts(),
            "real_half_b": half_b.counts(),
            "synthetic_matched": synth_m.counts(),
        },
    )
    res.samples = [Figure(file=str(p.relative_to(out)), caption=c) for p, c in fam.sample_grids(ctx)]
    runners = {name: fam.MODULES[name].compute for name in FAMILIES}  # each -> (typed result, figures)
    with _progress(progress) as bar:
        task = bar.add_task("evaluate", total=len(cfg.families))
        for name in cfg.families:
            ctx.step = lambda s, name=name: bar.update(task, description=f"[bold]{name}[/]: {s}")
            ctx.step("starting")
            res.families[name] = run_family(name, runners[name], ctx)
            bar.advance(task)
            write_results(res, out / "results.json")  # partial results survive an interrupted run
            status = res.families[name]
            colour = {"ok": "green", "skipped": "yellow", "error": "red"}[status.status]
            bar.console.print(
                f"[{colour}]{status.status:>7}[/] {name} ({status.seconds:.1f} s)"
                + (f": {status.reason}" if status.reason else "")
            )
    write_results(res, out / "results.json")
    return res


def run_family(name: str, fn: Callable[[Context], tuple], ctx: Context) -> FamilyResult:
    """Run one family: a MedfabError (e.g. too few images) marks it skipped, any other error failed."""
    t0 = time.perf_counter()
    try:
        data, figs = fn(ctx)
        figures = [Figure(file=str(Path(p).relative_to(ctx.out)), caption=c) for p, c in figs]
        return FamilyResult(status="ok", seconds=time.perf_counter() - t0, data=data, figures=figures)
    except MedfabError as e:
        return FamilyResult(status="skipped", seconds=time.perf_counter() - t0, reason=str(e))
    except Exception as e:  # noqa: BLE001 - one broken family must not lose the others' results
        with open(ctx.out / "errors.log", "a") as f:
            f.write(f"--- {name}\n{traceback.format_exc()}\n")
        return FamilyResult(
            status="error",
            seconds=time.perf_counter() - t0,
            reason=f"{type(e).__name__}: {e} (traceback in errors.log)",
        )


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
