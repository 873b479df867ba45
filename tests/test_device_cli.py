"""``--device`` on evaluate and anomaly fit / eval: cpu works, cuda without CUDA and unknown names are clear errors.

(``medfab sample --device`` is tested in test_sampling.py.)
"""

from __future__ import annotations

import json

import pytest
import torch
from test_evaluate_cli import write_set
from typer.testing import CliRunner

from medfab.cli.main import app

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    two = ("disk", "ring")
    return {n: write_set(root / n, seed=s, n=16, classes=two) for n, s in (("train", 0), ("test", 1), ("synth", 2))}


def _evaluate(sets, out, device):
    return CliRunner().invoke(app, ["evaluate", "--real-train", str(sets["train"]), "--real-test",
                                    str(sets["test"]), "--synthetic", str(sets["synth"]), "--out", str(out),
                                    "--size", "32", "--quick", "--epochs", "1", "--families", "class,privacy",
                                    "--features", "featurenet", "--device", device])


def test_evaluate_on_the_cpu(sets, tmp_path):
    r = _evaluate(sets, tmp_path / "eval", "cpu")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {n: f["status"] for n, f in res["families"].items()} == {"class": "ok", "privacy": "ok"}
    assert json.loads((tmp_path / "eval" / "eval_config.json").read_text())["device"] == "cpu"


@pytest.mark.parametrize("device, message", [("foo", "unknown device 'foo'")]
                         + ([("cuda", "no CUDA device"), ("cuda:1", "no CUDA device")] if NO_CUDA else []))
def test_evaluate_device_errors(sets, tmp_path, device, message):
    r = _evaluate(sets, tmp_path / "eval", device)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "eval" / "results.json").exists()


@pytest.fixture(scope="module")
def anomaly_data(tmp_path_factory):
    from medfab.phantom import make_cohort

    root = tmp_path_factory.mktemp("anomaly_device")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDFAB_CACHE", str(root / "cache"))
        kw = {"size": 16, "dims": 2, "balance": "equal", "contrast": "t2"}
        return {"root": root, "train": make_cohort("tumor", n=80, seed=0, out=root / "train", **kw),
                "test": make_cohort("tumor", n=20, seed=1, out=root / "test", **kw)}


def _fit(data, out, device):
    return CliRunner().invoke(app, ["anomaly", "fit", "--data", str(data["train"]), "--normal-class", "no",
                                    "--out", str(out), "--kimg", "0.05", "--size", "16", "--set", "width=8",
                                    "--no-progress", "--device", device])


def test_anomaly_fit_and_eval_on_the_cpu(anomaly_data, monkeypatch):
    monkeypatch.setenv("MEDFAB_CACHE", str(anomaly_data["root"] / "cache"))
    run = anomaly_data["root"] / "run"
    r = _fit(anomaly_data, run, "cpu")
    assert r.exit_code == 0, r.output
    out = anomaly_data["root"] / "eval"
    r = CliRunner().invoke(app, ["anomaly", "eval", "--run", str(run), "--test", str(anomaly_data["test"]),
                                 "--out", str(out), "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert len(json.loads((out / "results.json").read_text())["rows"]) == 4
    for device, message in [("foo", "unknown device 'foo'")] + ([("cuda", "no CUDA device")] if NO_CUDA else []):
        r = CliRunner().invoke(app, ["anomaly", "eval", "--run", str(run), "--test", str(anomaly_data["test"]),
                                     "--out", str(out / device), "--no-progress", "--device", device])
        assert r.exit_code == 2 and message in r.output, r.output


@pytest.mark.parametrize("device, message", [("foo", "unknown device 'foo'")]
                         + ([("cuda", "no CUDA device")] if NO_CUDA else []))
def test_anomaly_fit_device_errors(anomaly_data, tmp_path, device, message):
    r = _fit(anomaly_data, tmp_path / "run", device)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "run" / "config.json").exists()
