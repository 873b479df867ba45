"""medfab sample: fabricate a labelled synthetic set from a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from medfab.cli.common import console, friendly


@friendly
def sample(
    run: Path = typer.Option(..., "--run", help="Run folder written by 'medfab train'."),
    out: Path = typer.Option(..., "--out", help="New folder for OUT/<class>/<class>_<seed>.png + manifest."),
    n_per_class: int | None = typer.Option(None, "--n-per-class", help="Make N images of every class."),
    balance_to: int | None = typer.Option(None, "--balance-to",
                                             help="Top every class up to N images (N - training count)."),
    match_counts: bool = typer.Option(False, "--match-counts", help="As many per class as the training data."),
    seed: int = typer.Option(0, "--seed", help="Base seed; image i gets seed*10^6+i (see manifest.csv)."),
    bit_depth: int = typer.Option(8, "--bit-depth", help="8 or 16 bits per pixel."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A checkpoint other than the latest."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fabricate synthetic images marked as such (PNG text chunk / NIfTI descrip), with a manifest and card."""
    from medfab.sampling.fabricate import fabricate

    path = fabricate(run, out, n_per_class=n_per_class, balance_to=balance_to, match_counts=match_counts,
                     seed=seed, bit_depth=bit_depth, checkpoint=checkpoint, progress=progress)
    console.print(f"[green]wrote[/] {path} (manifest.csv, model_card.json)")
