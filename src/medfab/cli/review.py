"""medfab review serve | add-reviewer | results: a visual Turing test of synthetic images by experts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medfab.cli.common import console, friendly

app = typer.Typer(no_args_is_help=True)

DEFAULT_PORT = 8765


def _base_url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


@app.command("serve")
@friendly
def serve_cmd(
    real: Path = typer.Option(..., "--real", help="Real images: one sub-folder per class."),
    synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic images, e.g. the OUT of `medfab sample`."),
    out: Path = typer.Option(..., "--out", help="Review folder (database, results); run again to continue."),
    n: int = typer.Option(100, "--n", help="Images to review: half real, half synthetic, stratified by class."),
    seed: int = typer.Option(0, "--seed", help="Seed of the selection and of each reviewer's order."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on."),
    threads: int = typer.Option(8, "--threads", help="Worker threads of the web server."),
    minutes: float = typer.Option(None, "--minutes", help="Stop serving after this many minutes (default: Ctrl-C)."),
) -> None:
    """Serve the review web app. The selection of images is drawn the first time and kept in OUT."""
    from medfab.errors import MedfabError
    from medfab.review.db import ReviewDB
    from medfab.review.selection import ensure_selection
    from medfab.review.server import make_server, run

    if not 0 < port < 65536:
        raise MedfabError(f"--port must be between 1 and 65535, not {port}", "e.g. --port 8765")
    if threads < 1:
        raise MedfabError(f"--threads must be at least 1, not {threads}", "e.g. --threads 8")
    db = ReviewDB(out, create=True)
    summary = ensure_selection(db, real, synthetic, n=n, seed=seed)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {note}")
    server = make_server(out, host=host, port=port, threads=threads)
    url = _base_url(host, port)
    db.set_meta("url", url)
    counts = ", ".join(f"{s}: " + " ".join(f"{c}={k}" for c, k in v.items()) for s, v in summary.per_class.items())
    console.print(f"[bold green]{'new' if summary.created else 'continuing'} review[/] of {summary.n} images ({counts})")
    reviewers = db.reviewers()
    for r in reviewers:  # the organiser's own terminal: the links to hand out
        console.print(f"  {r.name}: {url}/r/{r.token}")
    console.print(f"add a reviewer: medfab review add-reviewer {out} NAME   (prints their personal link)")
    console.print(f"serving on {url} - stop with Ctrl-C; run the same command again to continue")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]note:[/] listening on {host}: anyone who can reach it and holds a link can answer")
    run(server, minutes=minutes)
    console.print("stopped; every answer given so far is saved")


@app.command("add-reviewer")
@friendly
def add_reviewer_cmd(
    review_dir: Path = typer.Argument(..., help="Review folder (the --out of `medfab review serve`)."),
    name: str = typer.Argument(..., help="Reviewer's name or pseudonym (shown in the results only)."),
) -> None:
    """Add a reviewer and print their personal link (keep it private: the link is the password)."""
    from medfab.errors import MedfabError
    from medfab.review.db import ReviewDB

    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise MedfabError(f"invalid reviewer name {name!r}", "use 1-100 printable characters, e.g. reader1")
    if review_dir.exists() and not review_dir.is_dir():
        raise MedfabError(f"{review_dir} is a file", "give the review folder (the --out of `medfab review serve`)")
    db = ReviewDB(review_dir, create=True)
    r = db.add_reviewer(name)
    url = db.get_meta("url") or _base_url("127.0.0.1", DEFAULT_PORT)
    console.print(f"reviewer {name!r} added; their personal link, while `medfab review serve` runs on {url}"
                  " (`serve` prints every reviewer's link for its own --host/--port):")
    print(f"{url}/r/{r.token}")


@app.command("results")
@friendly
def results_cmd(
    review_dir: Path = typer.Argument(..., help="Review folder (the --out of `medfab review serve`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of tables."),
) -> None:
    """Accuracy at telling real from synthetic (vs chance), per class, agreement, quality. Writes results.json."""
    from medfab.review.results import write_results

    res, path = write_results(review_dir)
    if as_json:
        print(json.dumps(res.to_json(), indent=2))
        return
    _print_tables(res)
    console.print(f"[bold green]wrote[/] {path}")


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def _num(v, fmt=".2f") -> str:
    return "—" if v is None else format(v, fmt)


def _ms(mean, sd) -> str:
    return "—" if mean is None else f"{mean:.2f}" + ("" if sd is None else f" ± {sd:.2f}")


def _print_tables(res) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(width=max(console.width, 180))
    t = Table(title=f"Real or synthetic? {res.n_images} images, chance = 50%")
    for h in ("reviewer", "answers", "accuracy", "95% CI", "p vs chance", "sensitivity", "specificity",
              "class acc. real", "class acc. synth.", "quality real", "quality synth.", "MWU p"):
        t.add_column(h, justify="left" if h == "reviewer" else "right")
    for r in [*res.reviewers, res.pooled]:
        d, q = r.detection, r.quality
        t.add_row(
            r.name, str(r.answered), _pct(d.accuracy),
            "—" if d.ci_low is None else f"{_pct(d.ci_low)}–{_pct(d.ci_high)}", _num(d.p_vs_chance, ".3g"),
            _pct(d.sensitivity), _pct(d.specificity), _pct(r.class_accuracy_real), _pct(r.class_accuracy_synthetic),
            _ms(q.real_mean, q.real_sd), _ms(q.synthetic_mean, q.synthetic_sd),
            _num(q.mann_whitney_p, ".3g"),
        )
    out.print(t)
    c = Table(title="Pooled, by class of the image")
    for h in ("class", "answers", "accuracy", "95% CI", "sensitivity", "specificity"):
        c.add_column(h, justify="left" if h == "class" else "right")
    for name, d in res.pooled.per_class.items():
        c.add_row(name, str(d.n), _pct(d.accuracy),
                  "—" if d.ci_low is None else f"{_pct(d.ci_low)}–{_pct(d.ci_high)}",
                  _pct(d.sensitivity), _pct(d.specificity))
    out.print(c)
    out.print(f"Fleiss' kappa (real/synthetic calls): {_num(res.fleiss_kappa, '.3f')}; class calls: "
              f"{_num(res.fleiss_kappa_class, '.3f')} ({res.kappa_images} images answered by all {res.kappa_raters} reviewers)")
