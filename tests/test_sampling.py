"""Fabrication: counts per mode, manifest, reproducibility from the seed alone, synthetic markers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from tiny_model import register_tiny, tiny_data, tiny_model

from medfab.errors import MedfabError
from medfab.sampling.fabricate import CUDA_ATOL, fabricate, generate_batch, generate_one, plan_counts
from medfab.sampling.writers import read_png_text, to_uint
from medfab.training import checkpoint as ckpt
from medfab.training.loop import fit

pytestmark = pytest.mark.usefixtures("tiny_registered")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    data = tiny_data(counts=(6, 2))
    with pytest.MonkeyPatch.context() as mp:
        register_tiny(mp)
        fit(tiny_model(data), data, out=out, kimg=0.02, progress=False, config={})
    return out


def test_plan_counts():
    train = {"a": 717, "b": 52, "c": 2560}
    assert plan_counts(train, n_per_class=10) == {"a": 10, "b": 10, "c": 10}
    assert plan_counts(train, balance_to=2560) == {"a": 1843, "b": 2508, "c": 0}
    assert plan_counts(train, match_counts=True) == train
    with pytest.raises(MedfabError, match="exactly one"):
        plan_counts(train, n_per_class=1, match_counts=True)
    with pytest.raises(MedfabError, match="exactly one"):
        plan_counts(train)


def test_manifest_markers_and_reproducibility(run, tmp_path):
    out = fabricate(run, tmp_path / "s", balance_to=5, seed=2, progress=False)
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "class", "model", "checkpoint_sha256", "seed", "sampler"]
    assert {r["sampler"] for r in rows} == {"{}"}                       # a GAN has no sampler settings
    assert [r["class"] for r in rows] == ["c1"] * 3                # 6 >= 5: none; 5 - 2 = 3
    sha = ckpt.file_sha256(ckpt.latest_checkpoint(run))
    assert {r["checkpoint_sha256"] for r in rows} == {sha} and {r["model"] for r in rows} == {"tiny"}
    assert [r["file"] for r in rows] == [f"c1/c1_{2_000_000 + i}.png" for i in range(3)]
    model, _ = ckpt.load_run(run)
    for r in rows:
        im = Image.open(out / r["file"])
        assert im.text["Software"] == "medfab"
        assert im.text["Description"].startswith("SYNTHETIC image fabricated by medfab (model tiny")
        assert sha in im.text["Description"]
        # Made again from its seed alone, one image at a time: the same pixels.
        again = to_uint(generate_one(model, 1, int(r["seed"]))[0], 8)
        np.testing.assert_array_equal(np.asarray(im), again)
    card = json.loads((out / "model_card.json").read_text())
    assert card["synthetic"] is True and any("diagnosis" in s for s in card["must_not_be_used_for"])
    assert any("validation" in s for s in card["must_not_be_used_for"])
    assert card["generated"]["counts"] == {"c0": 0, "c1": 3} and card["data"]["counts"] == {"c0": 6, "c1": 2}
    assert not list(tmp_path.glob(".s.tmp-*"))                                # the temporary folder is gone


def test_set_size_does_not_change_an_image(run, tmp_path):
    """An image depends on its seed only: the same bytes whether 1 or 4 images of its class were made."""
    small = fabricate(run, tmp_path / "one", n_per_class=1, seed=0, progress=False)
    big = fabricate(run, tmp_path / "four", n_per_class=4, seed=0, progress=False)
    assert (small / "c0/c0_0.png").read_bytes() == (big / "c0/c0_0.png").read_bytes()
    assert (small / "c0/c0_0.png").read_bytes() != (big / "c0/c0_1.png").read_bytes()
    assert len(list((big / "c1").iterdir())) == 4


def test_match_counts_sixteen_bit_and_guards(run, tmp_path):
    out = fabricate(run, tmp_path / "m", match_counts=True, bit_depth=16, progress=False)
    assert len(list((out / "c0").iterdir())) == 6 and len(list((out / "c1").iterdir())) == 2
    im = Image.open(next((out / "c1").iterdir()))
    assert im.mode == "I;16" and read_png_text(im.filename)["Software"] == "medfab"
    with pytest.raises(MedfabError, match="not empty"):
        fabricate(run, out, n_per_class=1, progress=False)
    with pytest.raises(MedfabError, match="bit-depth"):
        fabricate(run, tmp_path / "x", n_per_class=1, bit_depth=12, progress=False)
    with pytest.raises(MedfabError, match="not a medfab run"):
        fabricate(tmp_path, tmp_path / "y", n_per_class=1, progress=False)


def test_explicit_checkpoint(run, tmp_path):
    path = ckpt.latest_checkpoint(run)
    a = fabricate(run, tmp_path / "a", n_per_class=1, checkpoint=path, progress=False)
    b = fabricate(run, tmp_path / "b", n_per_class=1, checkpoint=path.name, progress=False)
    assert (a / "c1/c1_1.png").read_bytes() == (b / "c1/c1_1.png").read_bytes()


def test_volumes_become_marked_nifti(tmp_path):
    import nibabel as nib

    data = tiny_data(counts=(2, 2), size=8, spatial_dims=3)
    fit(tiny_model(data), data, out=tmp_path / "run", kimg=0.008, progress=False, config={})
    out = fabricate(tmp_path / "run", tmp_path / "s", n_per_class=1, progress=False)
    img = nib.load(out / "c1" / "c1_1.nii.gz")
    assert img.shape == (8, 8, 8) and img.header["descrip"].tobytes().startswith(b"medfab SYNTHETIC")


# --- batched sampling: an image depends on its seed alone, whatever the batch size -------------------------
BATCHES = (1, 7, 64)


def _in_batches(model, seeds, bs, class_index=1, **sampler):
    return np.concatenate([generate_batch(model, class_index, seeds[i:i + bs], **sampler)
                           for i in range(0, len(seeds), bs)])


@pytest.mark.parametrize("name", __import__("medfab.models.registry").models.registry.MODEL_NAMES)
def test_every_model_is_batch_invariant_on_the_cpu(name):
    """Bit-identical floats (so identical files) for batch sizes 1, 7 and 64, for every registered model."""
    import torch

    from medfab.models.base import GenerativeModel
    from medfab.models.registry import VOLUME_ONLY, build_model, get_model_class

    torch.manual_seed(0)
    settings = get_model_class(name).sampler_settings is not GenerativeModel.sampler_settings
    size = 16 if settings else 32                                     # diffusion: 16², 1 step keep it short
    tiny_3d = {"image_size": 8, "fmap_base": 32, "fmap_max": 8, "z_dim": 4}   # a volume-only model: 8³ volumes
    model, _ = build_model(name, num_classes=3, **(tiny_3d if name in VOLUME_ONLY else {"image_size": size}))
    model.eval()
    sampler = {"steps": 1} if settings else {}
    seeds = list(range(1000, 1064))
    ref = _in_batches(model, seeds, 1, **sampler)
    shape = (8,) * 3 if name in VOLUME_ONLY else (size, size)
    assert np.isfinite(ref).all() and ref.shape == (64, 1, *shape)
    for bs in BATCHES[1:]:
        np.testing.assert_array_equal(_in_batches(model, seeds, bs, **sampler), ref,
                                      err_msg=f"{name}, batch size {bs}")
    assert not np.array_equal(ref[0], ref[1])                           # different seeds, different images


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_agree_within_tolerance():
    import torch

    from medfab.models.registry import build_model

    for name in ("pix2pix", "dcgan", "vae"):
        torch.manual_seed(0)
        model, _ = build_model(name, image_size=32, num_classes=3)
        model.eval().cuda()
        seeds = list(range(64))
        ref = _in_batches(model, seeds, 1)
        for bs in BATCHES[1:]:
            assert np.abs(_in_batches(model, seeds, bs) - ref).max() <= CUDA_ATOL, (name, bs)


def test_files_are_byte_identical_for_any_batch_size(run, tmp_path):
    made = {bs: fabricate(run, tmp_path / f"b{bs}", n_per_class=9, seed=3, progress=False, batch_size=bs,
                          device="cpu") for bs in BATCHES}
    names = sorted(p.relative_to(made[1]) for p in made[1].rglob("*.png"))
    assert len(names) == 18
    for bs in BATCHES[1:]:
        assert sorted(p.relative_to(made[bs]) for p in made[bs].rglob("*.png")) == names
        for n in names:
            assert (made[bs] / n).read_bytes() == (made[1] / n).read_bytes(), (bs, n)
        assert (made[bs] / "manifest.csv").read_text() == (made[1] / "manifest.csv").read_text()
    card = json.loads((made[7] / "model_card.json").read_text())
    assert card["generated"]["batch_size"] == 7 and card["generated"]["device"] == "cpu"


def test_sampler_settings_are_checked_and_recorded(run, tmp_path, monkeypatch):
    from tiny_model import TinyGAN

    with pytest.raises(MedfabError, match="takes no sampler settings"):
        fabricate(run, tmp_path / "x", n_per_class=1, progress=False, sampler={"steps": 8})
    assert not (tmp_path / "x").exists()

    class Stepped(TinyGAN):                      # stands for a diffusion model: settings with defaults
        def sampler_settings(self, sampler="euler", steps=32, guidance=1.0, **rest):
            if rest:
                raise MedfabError(f"unknown sampler settings {sorted(rest)}", "")
            return {"sampler": sampler, "steps": int(steps), "guidance": float(guidance)}

        def generate(self, y, generator=None, **sampler):
            self.sampler_settings(**sampler)
            return super().generate(y, generator)

    from medfab.models import registry

    real = registry._table
    monkeypatch.setattr(registry, "_table", lambda: {**real(), "tiny": Stepped})
    out = fabricate(run, tmp_path / "s", n_per_class=2, progress=False, sampler={"steps": 4})
    with open(out / "manifest.csv", newline="") as f:
        cells = {r["sampler"] for r in csv.DictReader(f)}
    assert cells == {'{"guidance":1.0,"sampler":"euler","steps":4}'}
    card = json.loads((out / "model_card.json").read_text())
    assert card["generated"]["sampler"] == {"sampler": "euler", "steps": 4, "guidance": 1.0}


def test_sample_cli_device_batch_size_and_errors(run, tmp_path):
    from typer.testing import CliRunner

    from medfab.cli.main import app

    r = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(tmp_path / "a"), "--n-per-class", "3",
                                 "--device", "cpu", "--batch-size", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "a").rglob("*.png"))) == 6
    r = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(tmp_path / "b"), "--n-per-class", "1",
                                 "--device", "foo"])
    assert r.exit_code == 2 and "unknown device 'foo'" in r.output
    r = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(tmp_path / "c"), "--n-per-class", "1",
                                 "--steps", "10"])
    assert r.exit_code == 2 and "takes no sampler settings" in r.output
    import torch

    if not torch.cuda.is_available():
        r = CliRunner().invoke(app, ["sample", "--run", str(run), "--out", str(tmp_path / "d"),
                                     "--n-per-class", "1", "--device", "cuda"])
        assert r.exit_code == 2 and "no CUDA device" in r.output
