"""medfab phantom: fabricate the built-in labelled phantom cohort (no data download needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medfab.cli.common import console, friendly


@friendly
def phantom(
    out: Annotated[Path, typer.Option("--out", "-o", help="New (or empty) folder to write the cohort into.")],
    task: Annotated[str, typer.Option(help="alzheimer (4 stages, Kaggle names) | tumor (Br35H no/yes).")]
    = "alzheimer",
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1000,
    size: Annotated[int, typer.Option(help="Edge length in pixels (2D) or voxels (3D).")] = 128,
    dims: Annotated[int, typer.Option(help="2: axial PNG slices; 3: NIfTI volumes.")] = 2,
    seed: Annotated[int, typer.Option(help="Same seed -> identical bytes.")] = 0,
    balance: Annotated[str, typer.Option(
        help="imbalanced (public set's proportions) | equal | ratios in class order, e.g. 50:35:14:1.")]
    = "imbalanced",
    contrast: Annotated[str | None, typer.Option(
        help="t1 | t2 | mixed (default: alzheimer t1, tumor mixed).")] = None,
    workers: Annotated[int, typer.Option(help="Processes; the output does not depend on it.")] = 1,
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
    if dims == 3:
        from medfab.phantom.cohort import SEG_DIR

        console.print(f"tissue segmentations (0 bg, 1 csf, 2 gm, 3 wm): {path / SEG_DIR}  "
                      f"(train with --with-seg {path / SEG_DIR} --seg-map identity)")
