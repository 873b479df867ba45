"""The training loop: resume, checkpoints, non-finite stop, config resolution, batches, logs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import register_tiny, tiny_data, tiny_model

from medfab.errors import MedfabError
from medfab.training import checkpoint as ckpt
from medfab.training.batches import BatchPlan
from medfab.training.config import resolve_config
from medfab.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "log_every": 2, "config": {}}


@pytest.fixture(autouse=True)
def _tiny_registered(monkeypatch):
    register_tiny(monkeypatch)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def test_resume_after_interrupt_matches_uninterrupted(tmp_path):
    data = tiny_data()
    ref = tiny_model(data)
    fit(ref, data, out=tmp_path / "ref", kimg=0.08, **QUIET)                 # 20 steps of 4 images

    # SIGINT arrives during step 7: the loop finishes the step, checkpoints, and raises KeyboardInterrupt.
    part = tiny_model(data, signal_at_step=7)
    with pytest.raises(KeyboardInterrupt):
        fit(part, data, out=tmp_path / "run", kimg=0.08, **QUIET)
    meta = ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path / "run"))
    assert meta["step"] == 8 and meta["nimg"] == 32
    # Resume with a differently initialised model: everything must come from the checkpoint.
    again = tiny_model(data, seed=123)
    fit(again, data, out=tmp_path / "run", kimg=0.08, **QUIET)
    _assert_same(_weights(ref), _weights(again))
    # The optimiser moments were restored too (else the weights would differ), and the run ended at 20 steps.
    assert ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path / "run"))["step"] == 20


def test_checkpoint_roundtrip_and_keep_last_two(tmp_path):
    data = tiny_data()
    model = tiny_model(data)
    fit(model, data, out=tmp_path, kimg=0.04, ckpt_every_minutes=1e-9, keep_checkpoints=2, **QUIET)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["ckpt-000000.036.json", "ckpt-000000.036.safetensors",
                     "ckpt-000000.040.json", "ckpt-000000.040.safetensors"]        # no temporary files left
    loaded, cfg = ckpt.load_run(tmp_path)
    _assert_same(_weights(model), _weights(loaded))
    assert cfg["data"]["classes"] == ["c0", "c1"] and cfg["data"]["counts"] == {"c0": 12, "c1": 4}
    assert cfg["kimg"] == pytest.approx(0.04) and len(cfg["checkpoint_sha256"]) == 64
    # Optimiser state is in the safetensors file, flattened.
    from safetensors.torch import load_file

    keys = load_file(str(ckpt.latest_checkpoint(tmp_path)))
    assert any(k.startswith("optim/G/0/exp_avg") for k in keys) and "rng/cpu" in keys


def test_unfinished_checkpoint_is_ignored(tmp_path):
    data = tiny_data()
    fit(tiny_model(data), data, out=tmp_path, kimg=0.02, **QUIET)
    good = ckpt.latest_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "ckpt-000099.000.safetensors").write_bytes(b"partial")   # no sidecar
    assert ckpt.latest_checkpoint(tmp_path) == good


def test_incompatible_resume_is_a_clear_error(tmp_path):
    data = tiny_data()
    fit(tiny_model(data), data, out=tmp_path, kimg=0.02, **QUIET)
    bigger = tiny_data(size=16)
    with pytest.raises(MedfabError, match="image_size: 8 -> 16"):
        fit(tiny_model(bigger), bigger, out=tmp_path, kimg=0.04, **QUIET)
    three = tiny_data(counts=(4, 4, 4))
    with pytest.raises(MedfabError, match="different run"):
        fit(tiny_model(three), three, out=tmp_path, kimg=0.04, **QUIET)
    # Another architecture of the same size: the weights do not fit; the run's config is left intact.
    with pytest.raises(MedfabError, match="does not fit this model"):
        fit(tiny_model(data, z_dim=7), data, out=tmp_path, kimg=0.04, **QUIET)
    assert json.loads((tmp_path / "config.json").read_text())["model"]["z_dim"] == 4


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = tiny_data()
    model = tiny_model(data, nan_at_step=5)
    with pytest.raises(MedfabError, match="loss_G.*nan at step 5") as e:
        fit(model, data, out=tmp_path, kimg=1.0, ckpt_every_minutes=1e-9, **QUIET)
    assert "last good checkpoint" in str(e.value)
    last = ckpt.latest_checkpoint(tmp_path)
    assert ckpt.read_sidecar(last)["step"] == 5                               # steps 0..4 were good
    loaded, _ = ckpt.load_run(tmp_path)
    assert all(torch.isfinite(v).all() for v in loaded.state_dict().values())


def test_out_of_memory_becomes_advice(tmp_path):
    data = tiny_data()
    with pytest.raises(MedfabError, match="out of memory") as e:
        fit(tiny_model(data, oom_at_step=1), data, out=tmp_path, kimg=1.0, **QUIET)
    assert "--batch-size" in e.value.hint and "--size" in e.value.hint


def test_class_sizes_are_checked(tmp_path):
    one = tiny_data(counts=(6, 1))
    with pytest.warns(UserWarning, match="single training image"):
        fit(tiny_model(one), one, out=tmp_path / "a", kimg=0.008, **QUIET)
    empty = tiny_data(counts=(6, 0))
    with pytest.raises(MedfabError, match="no training images"):
        fit(tiny_model(empty), empty, out=tmp_path / "b", kimg=0.008, **QUIET)
    with pytest.raises(MedfabError, match="no training budget"):
        fit(tiny_model(one), one, out=tmp_path / "c", **QUIET)


def test_balanced_batches_are_deterministic_and_sharded():
    y = np.array([0] * 95 + [1] * 5)
    plan = BatchPlan(y, 2, seed=3, balanced=True)
    drawn = np.concatenate([plan.global_batch(t, 64) for t in range(50)])     # 3200 draws
    share = (y[drawn] == 1).mean()
    assert 0.45 < share < 0.55                                                # 5 % of data, ~50 % of draws
    assert (BatchPlan(y, 2, seed=3, balanced=False).global_batch(0, 3200) >= 95).mean() < 0.1
    np.testing.assert_array_equal(plan.global_batch(7, 8), BatchPlan(y, 2, seed=3, balanced=True).global_batch(7, 8))
    shards = [plan.local_batch(7, 8, r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate(shards), plan.global_batch(7, 8))


def test_logs_grids_and_config(tmp_path):
    data = tiny_data(counts=(5, 5, 5))
    fit(tiny_model(data), data, out=tmp_path, kimg=0.04, grid_every=0.02, grid_per_class=3, progress=False,
        log_every=5, config={"note": "kept"})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10] and {"loss_D", "loss_G", "images_per_s", "kimg"} <= rows[0].keys()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "logs").iterdir())
    from PIL import Image

    grids = sorted((tmp_path / "grids").iterdir())
    assert [g.name for g in grids] == ["grid-000000.020.png", "grid-000000.040.png"]
    assert Image.open(grids[-1]).size == (3 * 8, 3 * 8)                       # (n*W, K*H)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["note"] == "kept" and cfg["model"]["name"] == "tiny" and cfg["training"]["batch_size"] == 4


def test_config_precedence_and_typos(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: dcgan\nlr: 0.1\nz_dim: 16\ngrid_every: 2\n")
    name, mf, tc = resolve_config(None, config_file=f, sets=["lr=0.2", "ema=false"], flags={"batch_size": 8,
                                                                                          "kimg": None})
    assert name == "dcgan" and mf == {"lr": 0.2, "z_dim": 16, "ema": False, "batch_size": 8}
    assert tc.grid_every == 2 and tc.kimg is None
    with pytest.raises(MedfabError, match="unknown setting 'lrr'") as e:
        resolve_config("dcgan", sets=["lrr=0.1"])
    assert "did you mean 'lr'" in e.value.hint
    with pytest.raises(MedfabError) as e:
        resolve_config("dcgan", sets=["gird_every=3"])
    assert "grid_every" in e.value.hint
    with pytest.raises(MedfabError, match="set from the data"):
        resolve_config("dcgan", sets=["num_classes=3"])
    with pytest.raises(MedfabError, match="bad value for training setting 'log_every'"):
        resolve_config("dcgan", sets=["log_every=0"])


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path):
    from medfab.models.registry import build_model

    name, mf, _ = resolve_config(None, config_file=path)
    assert path.stem == name
    build_model(name, **mf, num_classes=3)                                    # every value is valid


def test_cli_train_then_sample(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from medfab.cli.main import app

    rng = np.random.default_rng(0)
    for c, n in (("Healthy", 5), ("Tumour", 3)):
        (tmp_path / "data" / "train" / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((10, 12)) * 255).astype(np.uint8)).save(tmp_path / "data/train" / c / f"{i}.png")
    run = tmp_path / "run"
    base = ["train", "--data", str(tmp_path / "data"), "--model", "tiny", "--out", str(run), "--size", "8",
            "--no-progress"]
    res = CliRunner().invoke(app, base + ["--kimg", "0.016", "--set", "z_dimm=3"])
    assert res.exit_code == 2 and "did you mean 'z_dim'" in res.output
    res = CliRunner().invoke(app, base + ["--dry-run"])
    assert res.exit_code == 2 and "no training budget" in res.output
    res = CliRunner().invoke(app, base + ["--kimg", "0.016", "--batch-size", "4", "--set", "z_dim=3"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["z_dim"] == 3 and cfg["data"]["split"] == "train" and cfg["model"]["batch_size"] == 4
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--match-counts", "--out", str(tmp_path / "s"),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "s" / "Healthy").iterdir())) == 5
    assert len(list((tmp_path / "s" / "Tumour").iterdir())) == 3


def test_cli_per_class(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from medfab.cli.main import app

    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i + (100 if c == "b" else 0), np.uint8)).save(
                tmp_path / "data" / c / f"{i}.png")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data"), "--model", "tiny", "--out", str(run),
                                   "--size", "8", "--kimg", "0.008", "--batch-size", "4", "--per-class",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    for c in ("a", "b"):
        sub = json.loads((run / c / "config.json").read_text())
        assert sub["model"]["num_classes"] == 1 and sub["data"]["classes"] == [c]
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--n-per-class", "2", "--out", str(tmp_path / "s"),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "s" / "b").iterdir()) == ["b_2.png", "b_3.png"]


def test_every_training_setting_is_a_fit_keyword():
    import inspect

    from medfab.training.config import TrainConfig

    assert set(TrainConfig.model_fields) <= set(inspect.signature(fit).parameters)
