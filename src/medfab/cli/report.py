"""medfab report: one self-contained HTML page from an evaluation folder."""

from __future__ import annotations

from pathlib import Path

import typer

from medfab.cli.common import console, friendly


@friendly
def report(
    eval_dir: Path = typer.Argument(..., help="Folder written by `medfab evaluate --out EVAL`."),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default: EVAL/report.html)."),
    title: str = typer.Option("medfab evaluation report", "--title", help="Title at the top of the page."),
    review: Path | None = typer.Option(None, "--review", help="Add an expert review (`medfab review serve --out`)."),
) -> None:
    """Write ONE HTML file (figures embedded, no external assets) that summarises an evaluation."""
    from medfab.report.html import write_report

    path = write_report(eval_dir, out or eval_dir / "report.html", title=title, review_dir=review)
    console.print(f"[bold green]wrote[/] {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser")
