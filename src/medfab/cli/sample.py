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
    batch_size: int = typer.Option(64, "--batch-size", help="Images per model call (any size gives the same "
                                   "images)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:K."),
    sampler: str | None = typer.Option(None, "--sampler", help="Sampler name (models that have samplers, "
                                       "e.g. diffusion)."),
    steps: int | None = typer.Option(None, "--steps", help="Sampling steps (diffusion)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Classifier-free guidance weight (diffusion)."),
    eta: float | None = typer.Option(None, "--eta", help="Stochasticity eta / churn of the sampler (diffusion)."),
    near_copy_filter: str = typer.Option("auto", "--near-copy-filter",
                                         help="Replace near-copies of training images by new draws: auto (when "
                                         "the training data is at its recorded path), on or off."),
) -> None:
    """Fabricate synthetic images marked as such (PNG text chunk / NIfTI descrip), with a manifest and card."""
    from medfab.cli.common import lock_output_folder
    from medfab.sampling.fabricate import fabricate

    lock_output_folder(out)         # one process per output folder: a second is refused, naming the first

    given = {"sampler": sampler, "steps": steps, "guidance": guidance, "eta": eta}
    path = fabricate(run, out, n_per_class=n_per_class, balance_to=balance_to, match_counts=match_counts,
                     seed=seed, bit_depth=bit_depth, checkpoint=checkpoint, progress=progress,
                     batch_size=batch_size, device=device,
                     sampler={k: v for k, v in given.items() if v is not None},   # passed on only when given
                     near_copy_filter=near_copy_filter)
    console.print(f"[green]wrote[/] {path} (manifest.csv, model_card.json)")
    import json

    filt = json.loads((path / "model_card.json").read_text())["near_copy_filter"]
    if filt["mode"] == "on":
        replaced = ", ".join(f"{c} {n}" for c, n in filt["rejected"].items() if n) or "none"
        console.print(f"near-copy filter on (RMS < {filt['threshold_rms']:.3f} at {filt['pixel_size']} px): "
                      f"replaced {replaced}")
    else:
        console.print(f"[yellow]near-copy filter {filt['mode']}[/]: near-copies of training images are not "
                      "replaced")
