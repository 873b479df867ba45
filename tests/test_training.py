"""The training loop: resume, checkpoints, non-finite stop, config resolution, batches, logs, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from tiny_model import tiny_data, tiny_model

from medfab.errors import MedfabError
from medfab.models.base import GenerativeModel, ModelConfig, Phase
from medfab.models.ema import make_ema
from medfab.training import checkpoint as ckpt
from medfab.training.batches import BatchPlan
from medfab.training.config import resolve_config
from medfab.training.loop import fit

REPO = Path(__file__).resolve().parents[1]
QUIET = {"progress": False, "log_every": 2, "config": {}}


pytestmark = pytest.mark.usefixtures("tiny_registered")


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


def test_cpu_minutes_budget_stops_on_process_cpu_time_and_carries_over_a_resume(tmp_path):
    """--cpu-minutes counts the process's CPU time (a fair budget on a shared machine), resumes included."""
    data = tiny_data()
    fit(tiny_model(data), data, out=tmp_path, cpu_minutes=0.005, **QUIET)            # 0.3 CPU-seconds
    first = ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path))
    assert 0.3 <= first["loop"]["cpu_seconds"] < 30 and first["step"] > 0
    fit(tiny_model(data), data, out=tmp_path, cpu_minutes=0.01, **QUIET)             # 0.3 more
    second = ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path))
    assert second["loop"]["cpu_seconds"] >= 0.6 and second["step"] > first["step"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    cpu = [r["cpu_seconds"] for r in rows if "cpu_seconds" in r]
    assert cpu and cpu == sorted(cpu)                                                  # monotone across the resume
    assert json.loads((tmp_path / "config.json").read_text())["training"]["cpu_minutes"] == 0.01


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
    drawn = torch.cat([plan.global_batch(t, 64) for t in range(50)]).numpy()     # 3200 draws
    share = (y[drawn] == 1).mean()
    assert 0.45 < share < 0.55                                                # 5 % of data, ~50 % of draws
    assert (BatchPlan(y, 2, seed=3, balanced=False).global_batch(0, 3200) >= 95).float().mean() < 0.1
    assert torch.equal(plan.global_batch(7, 8), BatchPlan(y, 2, seed=3, balanced=True).global_batch(7, 8))
    assert not torch.equal(plan.global_batch(7, 8), plan.global_batch(8, 8))
    shards = [plan.local_batch(7, 8, r, 2) for r in range(2)]
    assert torch.equal(torch.cat(shards), plan.global_batch(7, 8))


def test_batch_hash_is_splitmix64_with_wraparound():
    """The device-side hash equals the reference splitmix64 in unsigned 64-bit arithmetic (so any device agrees)."""
    from medfab.training.batches import splitmix64

    z = np.array([0, 1, 2**40 + 3, 2**63 - 1], dtype=np.uint64)
    with np.errstate(over="ignore"):
        r = z + np.uint64(0x9E3779B97F4A7C15)
        r = (r ^ (r >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        r = (r ^ (r >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        r = r ^ (r >> np.uint64(31))
    got = splitmix64(torch.from_numpy(z.view(np.int64).copy())).numpy().view(np.uint64)
    np.testing.assert_array_equal(got, r)


def test_logs_grids_and_config(tmp_path):
    data = tiny_data(counts=(5, 5, 5))
    fit(tiny_model(data), data, out=tmp_path, kimg=0.04, grid_every=0.02, grid_per_class=3, progress=False,
        log_every=5, config={"note": "kept"})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss_D" in r]                                 # (grid steps add a near-copy row)
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
    if not torch.cuda.is_available():
        res = CliRunner().invoke(app, base + ["--kimg", "0.016", "--device", "cuda"])
        assert res.exit_code == 2 and "no CUDA device" in res.output
    res = CliRunner().invoke(app, base + ["--kimg", "0.016", "--batch-size", "4", "--set", "z_dim=3",
                                          "--device", "cpu", "--batch-gpu", "2"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["z_dim"] == 3 and cfg["data"]["split"] == "train" and cfg["model"]["batch_size"] == 4
    assert cfg["training"]["device"] == "cpu" and cfg["training"]["batch_gpu"] == 2
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


# --- the engine contract: phases, EMA, accumulation, log windows ------------------------------------------------

class _ToyConfig(ModelConfig):
    ema_decay: float = 0.5


class _Toy(GenerativeModel):
    """Two linear nets on flattened images, no randomness and no batch statistics: A every step, B every 2nd."""

    Config = _ToyConfig
    ddp_modules = ("A", "B")
    ema_pairs: ClassVar[dict[str, str]] = {"A_ema": "A"}

    def __init__(self, config):
        super().__init__(config)
        n = config.channels * config.image_size ** config.spatial_dims
        self.A, self.B = torch.nn.Linear(n, 1), torch.nn.Linear(n, 1)
        self.A_ema = make_ema(self.A)
        self.calls: list[tuple[str, int, int, int]] = []
        self.ema_seen: list[torch.Tensor] = []

    def phases(self):
        return [Phase("a", "A"), Phase("b", "B", interval=2)]

    def configure_optimizers(self):
        return {"A": torch.optim.SGD(self.A.parameters(), lr=0.1), "B": torch.optim.SGD(self.B.parameters(), lr=0.1)}

    def phase_loss(self, phase, x, y, ctx):
        self.calls.append((phase, ctx.step, ctx.micro, ctx.n_micro))
        net = self.A if phase == "a" else self.B
        if phase == "b":
            self.ema_seen.append(self.A_ema.weight.detach().clone())
        loss = (net(x.flatten(1)).squeeze(1) - y.float()).pow(2).mean()
        return {"loss": loss, "sq": loss.detach()}

    @torch.no_grad()
    def generate(self, y, generator=None, **sampler):
        return torch.zeros(len(y), self.config.channels, *[self.config.image_size] * self.config.spatial_dims)


def _toy(data, **fields):
    torch.manual_seed(0)
    return _Toy(_ToyConfig(name="toy", image_size=data.x.shape[-1], num_classes=len(data.classes),
                           spatial_dims=data.x.ndim - 2, **{"batch_size": 8, **fields}))


def test_phases_run_in_order_with_intervals_and_ema_after_its_phase():
    from medfab.models.ema import ema_decay
    from medfab.training.step import PhaseStepper

    data = tiny_data()
    model = _toy(data)
    opt = model.configure_optimizers()
    stepper = PhaseStepper(model, opt, batch_size=8)
    x, y = torch.from_numpy(data.x[:8]), torch.from_numpy(data.y[:8])
    a0, b0, e0 = model.A.weight.detach().clone(), model.B.weight.detach().clone(), model.A_ema.weight.clone()
    stepper.step(x, y, 0, 0)
    assert model.calls == [("a", 0, 0, 1)]                                   # B's interval is 2: not due at step 0
    assert torch.equal(model.B.weight, b0) and not torch.equal(model.A.weight, a0)   # only A's optimiser stepped
    d = ema_decay(0, 0.5)
    assert torch.allclose(model.A_ema.weight, d * e0 + (1 - d) * model.A.weight)    # EMA right after phase a
    a1 = model.A.weight.detach().clone()
    stepper.step(x, y, 1, 8)
    assert model.calls[1:] == [("a", 1, 0, 1), ("b", 1, 0, 1)]
    assert torch.equal(model.ema_seen[0], model.A_ema.weight)               # already updated when b ran
    assert not torch.equal(model.B.weight, b0) and not torch.equal(model.A.weight, a1)


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    data = tiny_data()
    whole, micro = _toy(data), _toy(data)
    fit(whole, data, out=tmp_path / "whole", kimg=0.032, **QUIET)
    fit(micro, data, out=tmp_path / "micro", kimg=0.032, batch_gpu=2, **QUIET)
    assert micro.calls[:4] == [("a", 0, i, 4) for i in range(4)]
    for k, v in whole.state_dict().items():
        assert torch.allclose(v, micro.state_dict()[k], atol=1e-6), k
    with pytest.raises(MedfabError, match="batch-gpu 3 does not divide"):
        fit(_toy(data), data, out=tmp_path / "bad", kimg=0.032, batch_gpu=3, **QUIET)


def test_lr_warmup_and_grad_clip(tmp_path):
    from medfab.training.step import PhaseStepper

    data = tiny_data()
    model = _toy(data)
    opt = model.configure_optimizers()
    stepper = PhaseStepper(model, opt, batch_size=8, lr_warmup_kimg=0.032, grad_clip=1e-3)
    x, y = torch.from_numpy(data.x[:8]), torch.from_numpy(data.y[:8])
    a0 = model.A.weight.detach().clone()
    stepper.step(x, y, 0, 0)
    assert opt["A"].param_groups[0]["lr"] == pytest.approx(0.1 * 8 / 32)     # images seen after the step / 32
    assert (model.A.weight - a0).norm() <= 0.1 * 8 / 32 * 1e-3 + 1e-9      # lr * clipped gradient norm
    stepper.step(x, y, 10, 80)
    assert opt["A"].param_groups[0]["lr"] == pytest.approx(0.1)


def test_resumed_metrics_equal_uninterrupted(tmp_path):
    data = tiny_data()
    settings = {**QUIET, "log_every": 3}
    fit(tiny_model(data), data, out=tmp_path / "ref", kimg=0.08, **settings)
    with pytest.raises(KeyboardInterrupt):                                    # stops at step 8: mid log window
        fit(tiny_model(data, signal_at_step=7), data, out=tmp_path / "run", kimg=0.08, **settings)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:                  # a row written after the checkpoint
        f.write(json.dumps({"step": 9, "loss_D": 0.0}) + "\n")                # by a session killed at once
    fit(tiny_model(data), data, out=tmp_path / "run", kimg=0.08, **settings)

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "cpu_seconds", "images_per_s")}
                for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows("ref")] == [3, 6, 9, 12, 15, 18]
    assert rows("run") == rows("ref")
