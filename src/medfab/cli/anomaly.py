"""medfab anomaly fit / eval: VAE reconstruction-error anomaly detection (see docs/anomaly.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from medfab.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True)


def _parse_sets(sets: list[str] | None) -> dict:
    import yaml

    from medfab.errors import MedfabError

    out = {}
    for s in sets or []:
        if "=" not in s:
            raise MedfabError(f"--set {s!r} is not key=value", "write e.g. --set width=16")
        k, v = s.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


@app.command("fit")
@friendly
def fit(
    data: Path = typer.Option(..., "--data", help="Real images: one folder per class, or train/<class>/ "
                              "(and optional val/<class>/)."),
    normal_class: str = typer.Option(..., "--normal-class", help="The class the VAE learns as 'normal'."),
    out: Path = typer.Option(..., "--out", help="Run folder (config, checkpoints, anomaly.json)."),
    synthetic: Path | None = typer.Option(None, "--synthetic", help="Fabricated images (class folders)."),
    training: str = typer.Option("real", "--training", help="real, synthetic or mixed normal images."),
    size: int = typer.Option(64, "--size", help="Image side length in pixels."),
    minutes: float | None = typer.Option(None, "--minutes", help="Training time budget."),
    cpu_minutes: float | None = typer.Option(None, "--cpu-minutes", help="Budget in CPU time of the training "
                                             "process (all threads): fair on a shared machine."),
    kimg: float | None = typer.Option(None, "--kimg", help="Budget in thousands of training images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, weights, batches and clustering."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Validation share of each class "
                                       "(when there is no val split)."),
    set_: list[str] | None = typer.Option(None, "--set", help="VAE setting key=value (e.g. width=16); "
                                          "repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:K."),
) -> None:
    """Train a VAE on the normal class and learn every detector's threshold on validation images."""
    from pydantic import ValidationError

    from medfab.device import resolve_device

    resolve_device(device)          # a bad or absent --device stops here, before any loading

    from medfab.anomaly.fit import AnomalyConfig, fit_anomaly
    from medfab.errors import MedfabError

    try:
        cfg = AnomalyConfig(normal_class=normal_class, training=training, size=size, seed=seed,
                            val_fraction=val_fraction, model=_parse_sets(set_))
    except ValidationError as e:
        err = e.errors()[0]
        raise MedfabError(f"bad option {'.'.join(map(str, err['loc']))}: {err['msg']}",
                          "see `medfab anomaly fit --help`") from None
    from medfab.cli.common import lock_run_folder

    lock_run_folder(out)            # one process per run folder (a second is refused); stale temporaries removed
    run = fit_anomaly(cfg, data, out, synthetic=synthetic, kimg=kimg, minutes=minutes, cpu_minutes=cpu_minutes,
                      progress=progress, device=device)
    import json

    state = json.loads((run / "anomaly.json").read_text())
    d = state["data"]
    console.print(f"[green]anomaly run written to[/] {run}  (trained on {d['train_normal']} normal images, "
                  f"validation {d['val_normal']} normal / {d['val_abnormal']} abnormal)")
    for k, s in state["methods"].items():
        extra = s.get("threshold", s.get("eps", ""))
        console.print(f"  {k}: {s.get('rule', 'eps' if 'eps' in s else 'clusters the test set')} {extra}")


@app.command("eval")
@friendly
def eval_(
    run: Path = typer.Option(..., "--run", help="Folder written by 'medfab anomaly fit'."),
    test: Path = typer.Option(..., "--test", help="Labelled test images: one folder per class, "
                              "or test/<class>/."),
    out: Path = typer.Option(Path("EVAL/anomaly"), "--out", help="Results folder (shared by several runs)."),
    label: str | None = typer.Option(None, "--label", help="Row label (default: the run's training kind)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:K."),
) -> None:
    """Label every test image with each detector; write results.json, ROC curves and error-map galleries."""
    from rich.table import Table

    from medfab.anomaly.evaluate import evaluate_anomaly

    res = evaluate_anomaly(run, test, out, label=label, progress=progress, device=device)
    t = Table(title="Anomaly detection (abnormal = positive)")
    for c in ("method", "training", "accuracy", "precision", "recall", "F1", "AUC", "tp/fp/tn/fn"):
        t.add_column(c, justify="left" if c in ("method", "training") else "right")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"
    for r in res["rows"]:
        values = (fmt(r.get(k)) for k in ("accuracy", "precision", "recall", "f1", "auc"))
        counts = "/".join(str(r.get(k)) for k in ("tp", "fp", "tn", "fn"))
        t.add_row(r["method"], r["training"], *values, counts)
    console.print(t)
    console.print(f"[green]results written to[/] {out / 'results.json'}")
