"""The `medfab` command. Each sub-command lives in its own module under medfab.cli."""

from __future__ import annotations

import typer

from medfab.cli import anomaly, data, evaluate, phantom, report, review, sample, train

app = typer.Typer(
    name="medfab",
    help="Generative fabrication of labelled medical images for machine-learning training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data", help="Inspect and split labelled image data sets.")
app.command("phantom")(phantom.phantom)
app.command("train")(train.train)
app.command("sample")(sample.sample)
app.command("evaluate")(evaluate.evaluate)
app.command("report")(report.report)
app.add_typer(anomaly.app, name="anomaly", help="VAE reconstruction-error anomaly detection.")
app.add_typer(review.app, name="review", help="Expert review: a visual Turing test in the browser.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
