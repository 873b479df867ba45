"""Fabricate a labelled synthetic set from a trained run: ``OUT/<class>/<class>_<seed>.png`` + manifest + card.

Reproducibility: image ``i`` of a set made with base seed ``K`` gets its own seed ``K * 10**6 + i``. Images are
made in batches (``batch_size``) on any device; inside a batch every random draw of image ``i`` comes from its own
generator ``torch.Generator().manual_seed(seed_i)`` (edm2's ``StackedRandomGenerator``), and the network runs
batch-invariantly (:mod:`medfab.sampling.invariance`), so an image depends on its seed alone: on the CPU the files
are byte-identical whether it was made alone, in a batch of 7 or of 64; on CUDA the pixels agree within
``CUDA_ATOL`` = 1e-3 in [-1, 1] (an 8-bit level is 2/255 = 7.8e-3).

Near-copies of training images are replaced (:mod:`medfab.sampling.nearcopy_filter`, on when the training data
is at its recorded path): a rejected seed is skipped and the next free index after the planned ones is drawn,
in order, so the set is still a function of the base seed; the manifest lists every image's seed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medfab.errors import MedfabError
from medfab.sampling.invariance import CUDA_ATOL, batch_invariant
from medfab.sampling.manifest import ManifestRow, settings_json, write_manifest
from medfab.sampling.model_card import build_model_card
from medfab.sampling.writers import extension, seg_path, write_sample
from medfab.training import checkpoint as ckpt

SEED_STRIDE = 10**6     # images per base seed before two sets' seeds could meet
MAX_DRAWS = 10          # near-copy filter: give up on a class after this many draws per image asked for
__all__ = ["CUDA_ATOL", "fabricate", "generate_batch", "generate_one", "image_seed", "plan_counts"]


@dataclass
class _Source:
    """The model that makes one class: a joint run (class index c) or a per-class run (index 0)."""

    model: torch.nn.Module
    index: int
    config: dict


def image_seed(base_seed: int, i: int) -> int:
    return base_seed * SEED_STRIDE + i


def generate_batch(model, class_index: int, seeds: Sequence[int], **sampler) -> np.ndarray:
    """Images (B, C, H, W[, D]) float32 in [-1, 1] of class ``class_index``, image ``i`` from ``seeds[i]`` alone.

    Runs on the model's device. CPU: row ``i`` is bit-identical for any batch size. CUDA: equal within
    ``CUDA_ATOL`` (1e-3) for any batch size (kernels are chosen by shape; TF32 is off while sampling).
    """
    from medfab.models.noise import StackedRandomGenerator

    device = next(model.parameters()).device
    y = torch.full((len(seeds),), int(class_index), dtype=torch.long, device=device)
    with torch.inference_mode(), batch_invariant(device):
        x = model.generate(y, generator=StackedRandomGenerator(seeds), **sampler)   # (B, C, H, W[, D])
    return x.float().cpu().numpy()


def generate_one(model, class_index: int, seed: int, **sampler) -> np.ndarray:
    """The image (C, H, W[, D]) in [-1, 1] that ``seed`` makes for ``class_index``."""
    return generate_batch(model, class_index, [seed], **sampler)[0]


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


def _check_seed_room(n: int) -> None:
    """``n`` image indices (planned images plus replacements of near-copies) must fit under one base seed."""
    if n >= SEED_STRIDE:
        raise MedfabError(f"{n} images asked for; at most {SEED_STRIDE - 1} per call",
                          "split the request over several --seed values")


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
              checkpoint: str | Path | None = None, progress: bool = True, batch_size: int = 64,
              device: str = "auto", sampler: dict | None = None, near_copy_filter: str = "auto") -> Path:
    """Write the synthetic set to ``out`` (atomically: built in a temporary folder, then renamed).

    ``batch_size`` images per model call on ``device`` ("auto" | "cpu" | "cuda" | "cuda:K"); ``sampler``: the
    model's optional sampler settings (e.g. steps, guidance of a diffusion model), recorded in the manifest.
    ``near_copy_filter`` ("auto" | "on" | "off"): replace images that are near-copies of a training image of
    their class by the next free seed (:mod:`medfab.sampling.nearcopy_filter`); "auto" filters when the run's
    training data can be read at its recorded path. The model card records the filter and what it replaced.
    """
    from medfab.device import resolve_device

    if bit_depth not in (8, 16):
        raise MedfabError(f"--bit-depth must be 8 or 16, got {bit_depth}", "use --bit-depth 8 or 16")
    if seed < 0:
        raise MedfabError(f"--seed must be >= 0, got {seed}", "give a non-negative seed")
    if batch_size < 1:
        raise MedfabError(f"--batch-size must be >= 1, got {batch_size}", "e.g. --batch-size 64")
    dev = resolve_device(device)
    sampler = dict(sampler or {})
    run, out = Path(run), Path(out)
    classes, train_counts, sources = _sources(run, checkpoint)
    settings = {}
    for m in {id(s.model): s.model for s in sources.values()}.values():
        m.to(dev)
        settings = m.sampler_settings(**sampler)            # a model without settings rejects any, before work
    mode = "n_per_class" if n_per_class is not None else "balance_to" if balance_to is not None else "match_counts"
    counts = plan_counts(train_counts, n_per_class=n_per_class, balance_to=balance_to, match_counts=match_counts)
    total = sum(counts.values())
    _check_seed_room(total)
    from medfab.sampling.nearcopy_filter import build_filter

    model_fields = sources[classes[0]].config["model"]                  # a per-class root config has none
    filt, filter_note = build_filter({**ckpt.read_run_config(run), "model": model_fields}, near_copy_filter,
                                     progress)
    tmp = _prepare_out(out)
    rows: list[ManifestRow] = []
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc="sample", disable=not progress)
    # Files are written by a few threads (PNG encoding and file I/O release the GIL) while the next batch is
    # made; at most one batch of writes is in flight, and the manifest keeps the seed order.
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    pending: list = []
    try:
        first = 0                                           # index of the class's first image in the whole set
        spare = total                                       # next free index: replacements of rejected images
        for c in classes:
            src = sources[c]
            name, sha = src.config["model"]["name"], src.config["checkpoint_sha256"]
            ext = extension(src.config["model"].get("spatial_dims", 2))
            cell = settings_json(src.model.sampler_settings(**sampler))
            (tmp / c).mkdir()
            todo = [image_seed(seed, first + i) for i in range(counts[c])]
            drawn = 0
            while todo:
                drawn += len(todo)
                missing = 0
                for start in range(0, len(todo), batch_size):
                    seeds = todo[start:start + batch_size]
                    images = generate_batch(src.model, src.index, seeds, **sampler)  # (B, C, H, W[, D])
                    keep = filt.keep(c, images) if filt is not None else np.ones(len(seeds), bool)
                    missing += int((~keep).sum())
                    bar.update(sum(1 for f in pending if f.result() is None))        # the previous batch's files
                    pending = []
                    for s, image in zip(np.asarray(seeds)[keep].tolist(), images[keep]):
                        rel = f"{c}/{c}_{s}{ext}"
                        desc = (f"SYNTHETIC image fabricated by medfab (model {name}, checkpoint sha256 {sha}, "
                                f"seed {s})")
                        pending.append(pool.submit(write_sample, tmp, rel, image, bit_depth=bit_depth,
                                                   description=desc, config=src.config))   # + seg/<rel> if any
                        rows.append(ManifestRow(rel, c, name, sha, s, cell, seg_path(rel, src.config) or ""))
                if missing and drawn + missing > MAX_DRAWS * counts[c] + batch_size:
                    raise MedfabError(
                        f"class {c}: {filt.rejected[c]} of {drawn} fabricated images were near-copies of its "
                        f"training images (RMS < {filt.guard.threshold:.3f} at {filt.guard.pixel_size} px); the "
                        "model reproduces this class's training images",
                        "train on more images of this class or for less long, or sample with --near-copy-filter "
                        "off to keep the near-copies (not advised for data that leaves your site)")
                _check_seed_room(spare + missing)
                todo = [image_seed(seed, spare + j) for j in range(missing)]      # the next free seeds, in order
                spare += missing
            first += counts[c]
        bar.update(sum(1 for f in pending if f.result() is None))
        write_manifest(tmp / "manifest.csv", rows)
        card = build_model_card(run_configs={c: sources[c].config for c in classes} if len(
            {id(s.model) for s in sources.values()}) > 1 else {"all": sources[classes[0]].config},
            generated=counts, seed=seed, bit_depth=bit_depth, mode=mode, sampler=settings,
            batch_size=batch_size, device=str(dev))
        card["near_copy_filter"] = filt.record() if filt is not None else {"mode": filter_note}
        ckpt.atomic_write_json(tmp / "model_card.json", card)
        if out.exists():
            out.rmdir()                       # checked empty above
        os.replace(tmp, out)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)       # no writer may recreate files in the removed folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return out
