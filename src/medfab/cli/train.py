"""medfab train: train a class-conditional generator (or one model per class) on a labelled image folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medfab.cli.common import console, friendly


def _preprocess_record(size: int) -> dict | None:
    try:
        from medfab.data.preprocess import PreprocessConfig
    except ImportError:            # the provisional loader has no preprocessing config to record
        return None
    return PreprocessConfig(size=size).model_dump(mode="json")


@friendly
def train(
    data: Path = typer.Option(..., "--data", help="Folder with one sub-folder per class (or train/<class>/...)."),
    out: Path = typer.Option(..., "--out", help="Run folder; if it holds checkpoints, training resumes."),
    model: str | None = typer.Option(None, "--model", help="dcgan, wgan-gp, vae, pix2pix, progan3d, diffusion or ldm."),
    config: Path | None = typer.Option(None, "--config", help="YAML file of settings (see configs/)."),
    size: int | None = typer.Option(None, "--size", help="Image side length in pixels (default 64)."),
    minutes: float | None = typer.Option(None, "--minutes", help="Training time budget (total)."),
    cpu_minutes: float | None = typer.Option(None, "--cpu-minutes", help="Budget in CPU time of the training "
                                             "process (total, all threads): fair on a shared machine."),
    kimg: float | None = typer.Option(None, "--kimg", help="Budget in thousands of training images."),
    per_class: bool = typer.Option(False, "--per-class", help="One model per class in OUT/<class>/, each with the full budget."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per step (all processes)."),
    batch_gpu: int | None = typer.Option(None, "--batch-gpu", help="Micro-batch per process (gradient accumulation); default: no accumulation."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:K (auto: CUDA when present; torchrun: each rank's GPU)."),
    grad_clip: float | None = typer.Option(None, "--grad-clip", help="Clip each optimiser's gradient norm to this (default off)."),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the trained networks (for GPUs; off by default)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of weights, batches and noise (default 0)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Any setting as key=value; repeatable."),
    with_seg: Path | None = typer.Option(None, "--with-seg", help="Folder of segmentations (NIfTI) matched to the "
                                         "volumes by file name (<stem>_*.nii.gz); trained as extra channels."),
    seg_map: str = typer.Option("dlmuse", "--seg-map", help="Label ids -> tissue classes: dlmuse or identity."),
    dims: int | None = typer.Option(None, "--dims", help="3: train on whole volumes; 2: on slices (default: data)."),
    fit: str = typer.Option("pad", "--fit", help="pad: keep the whole image, pad to a square; crop_head: crop "
                            "to the head's bounding box first (removes padding a classifier could learn from)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Resolve and print the config, load the data, stop."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a class-conditional generator. Settings: model defaults < --config < --set < flags."""
    import torch

    from medfab import __version__
    from medfab.errors import MedfabError
    from medfab.models.registry import build_model, get_model_class
    from medfab.training.config import resolve_config

    flags = {"image_size": size, "kimg": kimg, "minutes": minutes, "cpu_minutes": cpu_minutes,
             "batch_size": batch_size, "seed": seed,
             "batch_gpu": batch_gpu, "device": device, "grad_clip": grad_clip, "compile": compile_}
    name, model_fields, tc = resolve_config(model, config_file=config, flags=flags, sets=set_)
    if tc.kimg is None and tc.minutes is None and tc.cpu_minutes is None:
        raise MedfabError("no training budget given",
                          "pass --minutes M, --cpu-minutes M or --kimg K (or put one in --config)")
    from medfab.device import resolve_device

    resolve_device(tc.device)                               # a CUDA request without CUDA fails before loading data
    if not dry_run:
        from medfab.cli.common import lock_run_folder

        lock_run_folder(out)        # one process per run folder (a second is refused); stale temporaries removed
    image_size = model_fields.get("image_size", get_model_class(name).Config.model_fields["image_size"].default)
    root = Path(data)
    if not root.is_dir():
        raise MedfabError(f"--data {root} is not a folder", "give the folder that holds one sub-folder per class")
    split = "train" if (root / "train").is_dir() else None
    from medfab.data import volumes
    from medfab.data.preprocess import fit_option

    pre = fit_option(fit, image_size)                       # None: the default preprocessing for the data
    # a folder of volumes with no class folders is one class (flat); else ROOT/[train/]<class>/
    flat, ts = volumes.training_tensors(root, size=image_size, split=split, preprocess=pre, dims=dims,
                                        progress=progress)
    volumes.check_volume_data(ts, dims)
    summary = {"path": str(root.resolve()), "split": split, "size": image_size, "counts": ts.counts()}
    run_config = {"medfab_version": __version__, "command": "train", "data": summary,
                  "preprocess": ts.preprocess or _preprocess_record(image_size), "training": tc.model_dump(),
                  "per_class": per_class}
    if ts.x.ndim == 5:
        from medfab.data.volumes import add_volume_inputs

        ts, run_config = add_volume_inputs(ts, run_config, root, flat, with_seg, seg_map, progress)
    elif with_seg is not None:
        raise MedfabError("--with-seg needs 3D volumes", "give a folder of NIfTI volumes (train with --dims 3)")
    shape = {"channels": int(ts.x.shape[1]), "spatial_dims": ts.x.ndim - 2}

    console.print(f"[bold]model[/] {name}  [bold]data[/] {root} ({split or 'all'}): "
                  + ", ".join(f"{c} {n}" for c, n in ts.counts().items()))
    # Validates the model settings against the data before anything is written.
    _, mcfg = build_model(name, **model_fields, **shape, num_classes=1 if per_class else len(ts.classes))
    if dry_run:
        console.print_json(json.dumps({**run_config, "model": mcfg.model_dump()}, default=str))
        console.print("[yellow]dry run: nothing trained, nothing written[/]")
        return

    fit_kwargs = {**tc.model_dump(), "progress": progress}      # TrainConfig fields are fit()'s keywords
    from medfab.training.loop import fit

    if not per_class:
        torch.manual_seed(tc.seed)                       # weight initialisation
        net, _ = build_model(name, **model_fields, **shape, num_classes=len(ts.classes))
        fit(net, ts, out=out, config=run_config, **fit_kwargs)
    else:
        from medfab.training.checkpoint import atomic_write_json

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {**run_config, "model": {"name": name, **model_fields},
                                                "data": {**summary, "classes": ts.classes}})
        for i, c in enumerate(ts.classes):
            console.print(f"[bold]class[/] {c} ({i + 1}/{len(ts.classes)}) -> {out / c}")
            sub = ts.select(ts.y == i)
            sub.y = sub.y * 0
            sub.classes = [c]
            torch.manual_seed(tc.seed)
            net, _ = build_model(name, **model_fields, **shape, num_classes=1)
            fit(net, sub, out=out / c, config={**run_config, "per_class": False, "class": c}, **fit_kwargs)
    import os

    if os.environ.get("RANK", "0") == "0":          # under torchrun only rank 0 speaks
        console.print(f"[green]done:[/] {out}\n  next: medfab sample --run {out} --match-counts --out SYNTH_DIR")
