"""Fabricate a labelled synthetic set from a trained run: ``OUT/<class>/<class>_<seed>.png`` + manifest + card.

Reproducibility: image ``i`` of a set made with base seed ``K`` gets its own seed ``K * 10**6 + i`` and is
drawn by ``model.generate([class], torch.Generator().manual_seed(seed))``. The model contract gives one
generator per ``generate`` call, so each image is its own call: that is what makes an image depend on
its seed alone (not on which batch it was in), and makes one image and the whole set give the same bytes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medfab.errors import MedfabError
from medfab.sampling.manifest import ManifestRow, write_manifest
from medfab.sampling.model_card import build_model_card
from medfab.sampling.writers import extension, write_image
from medfab.training import checkpoint as ckpt

SEED_STRIDE = 10**6     # images per base seed before two sets' seeds could meet


@dataclass
class _Source:
    """The model that makes one class: a joint run (class index c) or a per-class run (index 0)."""

    model: torch.nn.Module
    index: int
    config: dict


def image_seed(base_seed: int, i: int) -> int:
    return base_seed * SEED_STRIDE + i


@torch.no_grad()
def generate_one(model, class_index: int, seed: int) -> np.ndarray:
    """The image (C, H, W[, D]) in [-1, 1] that ``seed`` makes for ``class_index``."""
    g = torch.Generator().manual_seed(int(seed))
    y = torch.tensor([class_index], dtype=torch.long)
    return model.generate(y, generator=g)[0].float().cpu().numpy()


def plan_counts(train_counts: dict[str, int], *, n_per_class: int | None = None, balance_to: int | None = None,
                match_counts: bool = False) -> dict[str, int]:
    """How many images to make per class for each of the three modes (exactly one must be chosen)."""
    chosen = [n_per_class is not None, balance_to is not None, bool(match_counts)]
    if sum(chosen) != 1:
        raise MedfabError("choose exactly one of --n-per-class, --balance-to, --match-counts",
                          "e.g. --n-per-class 100, or --balance-to 2560 to top every class up to 2560")
    for flag, v in (("--n-per-class", n_per_class), ("--balance-to", balance_to)):
        if v is not None and v < 0:
            raise MedfabError(f"{flag} must be >= 0, got {v}", f"give a count, e.g. {flag} 100")
    if n_per_class is not None:
        return {c: n_per_class for c in train_counts}
    if balance_to is not None:
        return {c: max(0, balance_to - n) for c, n in train_counts.items()}
    return dict(train_counts)


def _sources(run: Path, checkpoint: str | Path | None) -> tuple[list[str], dict[str, int], dict[str, _Source]]:
    config = ckpt.read_run_config(run)
    if config.get("per_class"):
        if checkpoint is not None:
            raise MedfabError("--checkpoint cannot be used with a per-class run",
                              "sample each class's run folder on its own to pick a checkpoint")
        classes = list(config["data"]["classes"])
        out = {}
        for c in classes:
            m, cfg = ckpt.load_run(run / c)
            out[c] = _Source(m, 0, cfg)
        return classes, dict(config["data"]["counts"]), out
    m, cfg = ckpt.load_run(run, checkpoint or "latest")
    classes = list(cfg["data"]["classes"])
    return classes, dict(cfg["data"]["counts"]), {c: _Source(m, i, cfg) for i, c in enumerate(classes)}


def _prepare_out(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedfabError(f"{out} already exists and is not empty", "choose a new --out folder or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def fabricate(run: str | Path, out: str | Path, *, n_per_class: int | None = None, balance_to: int | None = None,
              match_counts: bool = False, seed: int = 0, bit_depth: int = 8,
              checkpoint: str | Path | None = None, progress: bool = True) -> Path:
    """Write the synthetic set to ``out`` (atomically: built in a temporary folder, then renamed)."""
    if bit_depth not in (8, 16):
        raise MedfabError(f"--bit-depth must be 8 or 16, got {bit_depth}", "use --bit-depth 8 or 16")
    if seed < 0:
        raise MedfabError(f"--seed must be >= 0, got {seed}", "give a non-negative seed")
    run, out = Path(run), Path(out)
    classes, train_counts, sources = _sources(run, checkpoint)
    mode = "n_per_class" if n_per_class is not None else "balance_to" if balance_to is not None else "match_counts"
    counts = plan_counts(train_counts, n_per_class=n_per_class, balance_to=balance_to, match_counts=match_counts)
    total = sum(counts.values())
    if total >= SEED_STRIDE:
        raise MedfabError(f"{total} images asked for; at most {SEED_STRIDE - 1} per call",
                          "split the request over several --seed values")
    tmp = _prepare_out(out)
    rows: list[ManifestRow] = []
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc="sample", disable=not progress)
    try:
        i = 0
        for c in classes:
            src = sources[c]
            name, sha = src.config["model"]["name"], src.config["checkpoint_sha256"]
            ext = extension(src.config["model"].get("spatial_dims", 2))
            (tmp / c).mkdir()
            for _ in range(counts[c]):
                s = image_seed(seed, i)
                i += 1
                rel = f"{c}/{c}_{s}{ext}"
                desc = f"SYNTHETIC image fabricated by medfab (model {name}, checkpoint sha256 {sha}, seed {s})"
                write_image(tmp / rel, generate_one(src.model, src.index, s), bit_depth=bit_depth,
                            description=desc)
                rows.append(ManifestRow(rel, c, name, sha, s))
                bar.update(1)
        write_manifest(tmp / "manifest.csv", rows)
        card = build_model_card(run_configs={c: sources[c].config for c in classes} if len(
            {id(s.model) for s in sources.values()}) > 1 else {"all": sources[classes[0]].config},
            generated=counts, seed=seed, bit_depth=bit_depth, mode=mode)
        ckpt.atomic_write_json(tmp / "model_card.json", card)
        if out.exists():
            out.rmdir()                       # checked empty above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return out
