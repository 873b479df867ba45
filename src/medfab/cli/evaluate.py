"""medfab evaluate: how good is a synthetic set? Fidelity, diversity, class fidelity, utility, privacy;
for 3D NIfTI volumes the volumes family (brain/tissue volumes, voxel variance, 3D MS-SSIM, nearest volume)."""

from __future__ import annotations

from pathlib import Path

import typer

from medfab.cli.common import console, friendly


@friendly
def evaluate(
    real_train: Path = typer.Option(..., "--real-train", help="Real training images (one folder per class)."),
    real_test: Path | None = typer.Option(
        None, "--real-test", help="Real test images, never seen by the generator (required for 2D)."
    ),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic images (same class folders)."),
    out: Path = typer.Option(..., "--out", help="Evaluation folder to write (results.json, figures/, ...)."),
    size: int = typer.Option(64, "--size", help="Images are compared at size x size (x size for 3D)."),
    fit: str = typer.Option("pad", "--fit", help="Real images: pad (whole image) or crop_head (crop to the head's "
                            "bounding box); use what the generator was trained with."),
    dims: int | None = typer.Option(
        None, "--dims", help="2 or 3 (default: 3 when the synthetic folder holds NIfTI volumes)."
    ),
    real_seg_volumes: Path | None = typer.Option(
        None, "--real-seg-volumes", help="3D: seg_volumes.csv of the real set (DLMUSE ROI volumes) for tissues."
    ),
    max_per_class: int | None = typer.Option(None, "--max-per-class", help="Cap images per class and set."),
    families: str = typer.Option(
        "fidelity,diversity,class,utility,privacy",
        "--families",
        help="Comma-separated metric families to run.",
    ),
    features: str = typer.Option(
        "featurenet,pixel,radiomic",
        "--features",
        help="Feature spaces for FD/KID (featurenet, pixel, radiomic); the first also "
        "feeds PRDC and privacy. --quick drops radiomic (slow).",
    ),
    extractor: Path | None = typer.Option(
        None, "--extractor", help="Your own feature extractor file (TorchScript or safetensors)."
    ),
    seeds: int = typer.Option(3, "--seeds", help="Classifier seeds in the utility study."),
    epochs: int = typer.Option(15, "--epochs", help="Epochs of every CNN trained for the evaluation."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw (halves, subsets, bootstrap)."),
    quick: bool = typer.Option(False, "--quick", help="Small samples, 1 seed, at most 10 epochs: a demo in minutes."),
    device: str = typer.Option("auto", "--device", help="Networks and neighbour searches on: auto (CUDA when "
                               "present), cpu, cuda or cuda:K."),
    classifiers: str = typer.Option("featurenet", "--classifiers", help="featurenet: class fidelity and utility "
                                    "reuse the feature network (minutes); cnn: train a CNN per regime and seed "
                                    "(hours on a laptop CPU)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Compare a synthetic set with real data, each figure next to the real-vs-real baseline."""
    from pydantic import ValidationError

    from medfab.errors import MedfabError
    from medfab.evaluation.run import EvalConfig
    from medfab.evaluation.run import evaluate as run_evaluation

    try:
        cfg = EvalConfig(
            real_train=str(real_train),
            real_test=str(real_test) if real_test else None,
            synthetic=str(synthetic),
            out=str(out),
            size=size,
            fit=fit,
            dims=dims,
            real_seg_volumes=str(real_seg_volumes) if real_seg_volumes else None,
            max_per_class=max_per_class,
            families=[f.strip() for f in families.split(",") if f.strip()],
            features=[f.strip() for f in features.split(",") if f.strip()],
            extractor=str(extractor) if extractor else None,
            seeds=seeds,
            epochs=epochs,
            seed=seed,
            quick=quick,
            device=device,
            classifiers=classifiers,
        )
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise MedfabError(f"invalid option(s): {msgs}", "see `medfab evaluate --help`") from None
    res = run_evaluation(cfg, progress=progress)
    bad = {n: f.status for n, f in res.families.items() if f.status != "ok"}
    console.print(
        f"[bold green]wrote[/] {out / 'results.json'}" + (f" ([yellow]not ok: {bad}[/])" if bad else "")
    )
    console.print(f"next: medfab report {out} --out {out / 'report.html'}")
