"""medfab data inspect | split: look at a labelled data set before training on it, and split it safely."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medfab.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True)


@app.command("inspect")
@friendly
def inspect_cmd(
    path: Path = typer.Argument(
        ..., help="Data folder (ROOT/<class>/..., ROOT/<split>/<class>/...) or .npz file."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Also write the full report (every duplicate) as JSON."
    ),
    labels_csv: Path = typer.Option(None, "--labels-csv", help="CSV with columns file,label[,subject]."),
    volume_mode: str = typer.Option("3d", help="NIfTI/DICOM volumes as '3d' samples or '2d' slices."),
    near_rmse: float = typer.Option(
        None, help="Near-duplicate threshold: thumbnail distance (default 0.012, see medfab.data.duplicates)."
    ),
) -> None:
    """Counts per class and split, sizes, modes, unreadable files, duplicates and leakage, with what to do."""
    from rich.console import Console

    from medfab.data import duplicates
    from medfab.data.inspect import inspect_dataset, print_report

    report = inspect_dataset(
        path,
        labels_csv=labels_csv,
        volume_mode=volume_mode,
        max_rmse=duplicates.MAX_RMSE if near_rmse is None else near_rmse,
    )
    print_report(report, Console(width=max(console.width, 120)))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {json_out}")


@app.command("split")
@friendly
def split_cmd(
    path: Path = typer.Argument(..., help="Data folder to split (existing split folders are pooled first)."),
    out: Path = typer.Option(
        ..., "--out", help="New (or empty) folder for train/, val/, test/ and split.csv."
    ),
    test: float = typer.Option(0.2, help="Fraction of samples for test."),
    val: float = typer.Option(0.1, help="Fraction of samples for validation (0: none)."),
    seed: int = typer.Option(0, help="Seed of the shuffle; the same seed gives the same split."),
    copy: bool = typer.Option(False, "--copy", help="Copy files instead of symlinking them."),
    labels_csv: Path = typer.Option(None, "--labels-csv", help="CSV with columns file,label[,subject]."),
) -> None:
    """Stratified, group-aware split: subjects and (near-)duplicates never straddle train/val/test."""
    from pydantic import ValidationError
    from rich.table import Table

    from medfab.data.split import SplitConfig, split_dataset
    from medfab.errors import MedfabError

    try:
        config = SplitConfig(test=test, val=val, seed=seed, link="copy" if copy else "symlink")
    except ValidationError as e:
        msg = "; ".join(f"{'/'.join(map(str, err['loc'])) or 'options'}: {err['msg']}" for err in e.errors())
        raise MedfabError(
            f"invalid split options: {msg}", "use fractions in [0, 1) with test + val < 0.95"
        ) from None
    summary = split_dataset(path, out, config, labels_csv=labels_csv)
    t = Table(title=f"split written to {out} ({'copies' if copy else 'symlinks'})")
    classes = list(next(iter(summary["counts"].values())))
    t.add_column("split")
    for c in classes:
        t.add_column(c, justify="right")
    t.add_column("total", justify="right")
    grand = sum(sum(v.values()) for v in summary["counts"].values())
    for sp, per in summary["counts"].items():
        n = sum(per.values())
        t.add_row(sp, *(str(per[c]) for c in classes), f"{n} ({100 * n / max(grand, 1):.0f} %)")
    console.print(t)
    console.print(
        f"{summary['groups']} groups; {summary['grouped_samples']} samples share a group with another "
        f"(same subject / volume / duplicate) and were kept on one side. See {out / 'split.csv'}."
    )
    if summary["largest_group"] > 0.5 * min(f for f in (test, val, 1.0) if f > 0) * grand:
        console.print(
            f"[yellow]one group holds {summary['largest_group']} samples, so the split sizes are coarse: "
            "check subject ids, or lower the near-duplicate threshold[/]"
        )
    if summary["unreadable"]:
        console.print(
            f"[yellow]{len(summary['unreadable'])} unreadable file(s) were placed but will fail to load, "
            f"e.g. {summary['unreadable'][0]}[/]"
        )
