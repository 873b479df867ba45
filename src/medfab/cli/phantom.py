"""medfab phantom: fabricate the built-in labelled phantom cohort (no data download needed)."""

from __future__ import annotations

from pathlib import Path

import typer

from medfab.cli.common import console, friendly


@friendly
def phantom(
    out: Path = typer.Option(..., "--out", "-o", help="New (or empty) folder to write the cohort into."),
    task: str = typer.Option("alzheimer", help="alzheimer (4 stages, Kaggle names) | tumor (Br35H no/yes)."),
    n: int = typer.Option(1000, "--n", help="Number of images."),
    size: int = typer.Option(128, help="Edge length in pixels (2D) or voxels (3D)."),
    dims: int = typer.Option(2, help="2: axial PNG slices; 3: NIfTI volumes."),
    seed: int = typer.Option(0, help="Same seed -> identical bytes."),
    balance: str = typer.Option("imbalanced", help="imbalanced (public set's proportions) | equal | ratios in class order, e.g. 50:35:14:1."),
    contrast: str | None = typer.Option(None, help="t1 | t2 | mixed (default: alzheimer t1, tumor mixed)."),
    workers: int = typer.Option(1, help="Processes; the output does not depend on it."),
) -> None:
    """Fabricate a labelled phantom cohort: OUT/<Class>/<id>.png|.nii.gz, ground_truth.csv, phantom.json."""
    import time

    from medfab.phantom import make_cohort
    from medfab.phantom.config import class_counts

    t0 = time.perf_counter()
    path = make_cohort(task, n, size, dims, seed, out, balance=balance, contrast=contrast, workers=workers,
                       progress=True)
    from medfab.phantom.config import CLASSES

    counts = class_counts(n, task, balance)
    summary = ", ".join(f"{c} {k}" for c, k in zip(CLASSES[task], counts))
    console.print(f"[green]wrote[/] {n} images to {path} in {time.perf_counter() - t0:.1f} s ({summary})")
