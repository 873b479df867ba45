"""Hostile inputs through the CLI: every one is read correctly or gives one clear message naming the file, with
exit status 2 -- never a traceback, never a silent wrong label. See tests/_hostile_corpus.py for the corpus."""

from __future__ import annotations

import shutil

import pytest
from _hostile_corpus import CASES, RUN_CASES, Case, good_images, make_run
from typer.testing import CliRunner

from medfab.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    """Run ``medfab ARGS`` in-process; the result's output holds stdout and stderr."""
    res = runner.invoke(app, [str(a) for a in args])
    out = res.output
    assert "Traceback" not in out, out
    # An exception that escaped the command (CliRunner catches it) would be a traceback for a user.
    assert res.exception is None or isinstance(res.exception, SystemExit), (res.exception, out)
    return res.exit_code, out


def flat(text: str) -> str:
    return "".join(text.split())  # messages are wrapped at the console width, even inside a path


def build(case: Case, root):
    good_images(root, layout=case.layout)
    case.build(root)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_inspect_lists_every_trap(case, tmp_path):
    root = build(case, tmp_path / "data")
    code, out = invoke("data", "inspect", root)
    assert code == (0 if case.inspect == "ok" else 2), out
    for name in case.names:
        assert name in flat(out), (name, out)
    if case.mention:
        assert case.mention in out, out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_train_reads_correctly_or_names_the_file(case, tmp_path):
    root = build(case, tmp_path / "data")
    code, out = invoke("train", "--data", root, "--model", "vae", "--out", tmp_path / "run", "--size", "16",
                       "--kimg", "0.01", "--set", "width=8", "--dry-run", "--no-progress")
    if case.train == "error":
        assert code == 2, out
        assert "error:" in out and "what to do:" in out, out
        assert any(n in flat(out) for n in case.names), (case.names, out)
    else:
        assert code == 0, out
        if case.counts:
            counts = ", ".join(f"{c} {n}" for c, n in case.counts.items())
            assert f"(all): {counts}" in " ".join(out.split()), out  # no image counted twice or under B
        if case.mention:
            assert "warning: " in out and case.mention in out, out
            assert ".py:" not in out and "warnings.warn" not in out, out  # a plain line, not medfab's source


def test_inspect_collects_every_problem_at_once(tmp_path):
    """One folder with many traps: inspect lists them all (exit 0), it does not stop at the first."""
    root = good_images(tmp_path / "data")
    for case in CASES:
        if case.layout == "png" and case.name not in ("link to another class",):
            case.build(root)
    code, out = invoke("data", "inspect", root)
    assert code == 0, out
    for name in ("bomb.png", "empty.png", "notes.png", "cut.png", "cut.jpg", "black.png", "loop", "C"):
        assert name in flat(out), (name, out)


# --- hostile run folders: checkpoints and configs -----------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("hostile") / "run")


def test_sample_from_the_intact_run(trained_run, tmp_path):
    code, out = invoke("sample", "--run", trained_run, "--n-per-class", "2", "--out", tmp_path / "s",
                       "--no-progress")
    assert code == 0, out
    assert len(list((tmp_path / "s").rglob("*.png"))) == 4


@pytest.mark.parametrize("name", list(RUN_CASES))
def test_hostile_run_is_one_message_naming_the_file(name, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    RUN_CASES[name](run)
    code, out = invoke("sample", "--run", run, "--n-per-class", "2", "--out", tmp_path / "s", "--no-progress")
    assert code == 2, out
    assert "what to do:" in out, out
    assert any(n in flat(out) for n in ("config.json", ".safetensors", "ckpt-")), out
    assert not (run / "PWNED").exists(), "loading a checkpoint executed code"
    assert not (tmp_path / "s").exists()


def test_absurd_training_config_is_refused_before_allocating(tmp_path):
    root = good_images(tmp_path / "data")
    code, out = invoke("train", "--data", root, "--model", "dcgan", "--out", tmp_path / "run", "--size", "16",
                       "--kimg", "0.01", "--set", "g_width=100000000", "--set", "max_channels=100000000",
                       "--no-progress")
    assert code == 2 and "parameters" in out, out
    assert not (tmp_path / "run").exists()  # nothing left behind
