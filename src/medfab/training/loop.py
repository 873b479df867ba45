"""The one training loop of medfab: batches, phases, logs, checkpoints, resume (edm2's ``training_loop``).

Every model (GAN, VAE, pix2pix, diffusion) supplies its losses phase by phase
(:meth:`medfab.models.base.GenerativeModel.phase_loss`); this loop owns everything around them: class-balanced
batches drawn on the device, per-step seeding, the optimisation itself (:class:`medfab.training.step.PhaseStepper`:
backward, gradient accumulation, clipping, lr warm-up, optimiser steps, EMA), DDP, bf16 autocast on CUDA, sample
grids, checkpoints every few minutes and on SIGINT/SIGTERM, automatic and exact resume (weights and
``metrics.jsonl`` rows), and clear errors for non-finite losses and out-of-memory. Loss values reach the host only
at log rows and checkpoints, so the GPU never waits for Python between steps.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError
from medfab.training import checkpoint as ckpt
from medfab.training.batches import BatchPlan, DeviceData
from medfab.training.distributed import (
    DistInfo,
    broadcast_flags,
    init_distributed,
    unwrap_ddp,
    unwrapped,
    wrap_ddp,
)
from medfab.training.step import LossWindow, PhaseStepper

# What must match for a run folder to be resumed (anything else, e.g. lr, may change between sessions).
_COMPAT_FIELDS = ("name", "image_size", "channels", "spatial_dims", "num_classes")


def _check_data(model, data: TensorSet) -> None:
    cfg = model.config
    if len(data) == 0:
        raise MedfabError("the training set is empty", "check the --data folder holds one folder per class")
    counts = data.counts()
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise MedfabError(f"class(es) {empty} have no training images",
                          "add images or remove the empty class folders")
    for c, n in counts.items():
        if n == 1:
            warnings.warn(f"class '{c}' has a single training image; the model can only copy it",
                          UserWarning, stacklevel=3)
    got = {"image_size": data.x.shape[-1], "channels": data.x.shape[1], "spatial_dims": data.x.ndim - 2,
           "num_classes": len(data.classes)}
    for k, v in got.items():
        if getattr(cfg, k) != v:
            raise MedfabError(f"model setting {k}={getattr(cfg, k)} does not match the data ({k}={v})",
                              "build the model from the data (medfab train does this), or change --size")


def _check_resumable(out: Path, new: dict[str, Any]) -> None:
    """A run folder with checkpoints may only be resumed by the same model, size and classes."""
    if ckpt.latest_checkpoint(out) is None or not (out / "config.json").is_file():
        return
    old = ckpt.read_run_config(out)
    diffs = [f"{k}: {old['model'].get(k)} -> {new['model'].get(k)}" for k in _COMPAT_FIELDS
             if old.get("model", {}).get(k) != new["model"].get(k)]
    if old.get("data", {}).get("classes") != new["data"]["classes"]:
        diffs.append(f"classes: {old.get('data', {}).get('classes')} -> {new['data']['classes']}")
    if diffs:
        raise MedfabError(f"{out} holds a different run, cannot resume it ({'; '.join(diffs)})",
                          "train into a new --out folder, or use the same model, --size and data to resume")


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the step and exits (twice: at once)."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _step_seed(seed: int, step: int, rank: int) -> int:
    # Re-seeding every step from (seed, step, rank) makes a resumed run draw exactly the same noise.
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _is_oom(e: BaseException) -> bool:
    # torch.OutOfMemoryError (torch >= 2.5) is a RuntimeError whose text says "out of memory".
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def fit(
    model,                                      # a GenerativeModel built for this data
    data: TensorSet,                            # training images (N, C, H, W[, D]) in [-1, 1]
    *,
    out: str | Path,                            # run folder; holding checkpoints means: resume
    kimg: float | None = None,                  # stop after this many thousand images (global) ...
    minutes: float | None = None,               # ... or this much training time, whichever comes first
    cpu_minutes: float | None = None,           # ... or this much CPU time of this process (all its threads)
    seed: int = 0,                              # batches and every random draw of each step
    config: dict[str, Any] | None = None,       # resolved settings to record in config.json
    batch_size: int | None = None,              # global batch; default model.config.batch_size
    batch_gpu: int | None = None,               # micro-batch per process (gradient accumulation); None = whole
    grad_clip: float | None = None,             # max gradient norm per optimiser step; None = off
    lr_warmup_kimg: float = 0.0,                # learning rate ramps up linearly over this many kimg
    device: str = "auto",                       # auto|cpu|cuda|cuda:K; under torchrun: the local rank's GPU
    compile: bool = False,                      # torch.compile each trained network
    channels_last: bool = False,                # channels-last memory format for networks and batches
    grid_every: float = 5.0,                    # kimg between per-class sample grids
    grid_per_class: int = 8,
    ckpt_every_minutes: float = 2.0,
    keep_checkpoints: int = 2,
    log_every: int = 50,                        # steps between metrics.jsonl rows (and host syncs)
    per_class_balanced_sampling: bool = True,
    progress: bool = True,
) -> Path:
    """Train ``model`` on ``data`` into ``out``; returns ``out``. Resumes from ``out``'s latest checkpoint."""
    out = Path(out)
    if kimg is None and minutes is None and cpu_minutes is None:
        raise MedfabError("no training budget given", "pass --kimg K, --minutes M or --cpu-minutes M")
    _check_data(model, data)
    info = init_distributed(device)
    B = int(batch_size or model.config.batch_size)
    if B % info.world_size:
        raise MedfabError(f"batch size {B} is not divisible by {info.world_size} processes",
                          f"use --batch-size {max(1, B // info.world_size) * info.world_size}")

    train_settings = {"kimg": kimg, "minutes": minutes, "cpu_minutes": cpu_minutes, "seed": seed, "batch_size": B, "batch_gpu": batch_gpu,
                          "grad_clip": grad_clip, "lr_warmup_kimg": lr_warmup_kimg, "device": str(info.device),
                          "compile": compile, "channels_last": channels_last, "grid_every": grid_every,
                          "grid_per_class": grid_per_class, "ckpt_every_minutes": ckpt_every_minutes,
                          "keep_checkpoints": keep_checkpoints, "log_every": log_every,
                          "per_class_balanced_sampling": per_class_balanced_sampling, "world_size": info.world_size}
    config = dict(config or {})
    run_config = {**config, "preprocess": config.get("preprocess") or getattr(data, "preprocess", None),
                  "model": model.config.model_dump(),
                  "training": {**config.get("training", {}), **train_settings},
                  "data": {**config.get("data", {}), "classes": list(data.classes), "counts": data.counts(),
                           "shape": list(data.x.shape[1:])}}
    _check_resumable(out, run_config)

    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # fixed shapes every step: let cuDNN pick its fastest kernels
    model.to(info.device).train()
    fmt = None
    if channels_last:
        fmt = torch.channels_last if data.x.ndim == 4 else torch.channels_last_3d
        model.to(memory_format=fmt)
    optimizers = model.configure_optimizers()
    cuda = info.device.type == "cuda"
    stepper = PhaseStepper(model, optimizers, batch_size=B, batch_gpu=batch_gpu, world_size=info.world_size,
                           grad_clip=grad_clip, lr_warmup_kimg=lr_warmup_kimg,
                           autocast=(lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda
                           else contextlib.nullcontext)
    step, nimg, seconds0, window, cpu0 = 0, 0, 0.0, None, 0.0
    latest = ckpt.latest_checkpoint(out)
    if latest is not None:
        meta = ckpt.load_checkpoint(latest, model, optimizers, restore_rng=True)
        step, nimg, seconds0 = meta["step"], meta["nimg"], meta["train_seconds"]
        window = (meta.get("loop") or {}).get("window", {})
        cpu0 = float((meta.get("loop") or {}).get("cpu_seconds", 0.0))
    if info.is_main:                            # only once the checkpoint (if any) has proven to fit
        out.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_json(out / "config.json", run_config)
    if compile:
        for name in type(model).ddp_modules:
            getattr(model, name).compile()      # in place: state_dict keys stay those of the plain network
    wrap_ddp(model, info)

    loop = _Loop(model, optimizers, stepper, DeviceData(data.x, data.y, info.device, channels_last=fmt is not None),
                 len(data.classes), out, info, run_config, B, seed, step, nimg, seconds0, window,
                 per_class_balanced_sampling, progress, cpu0)
    try:
        return loop.run(kimg, minutes, grid_every, grid_per_class, ckpt_every_minutes, keep_checkpoints,
                        log_every, cpu_minutes)
    finally:
        unwrap_ddp(model)                       # the caller gets back the plain model it passed in


class _Loop:
    """State of one training session; split out of :func:`fit` only to keep each piece readable."""

    def __init__(self, model, optimizers, stepper: PhaseStepper, data: DeviceData, num_classes: int, out: Path,
                 info: DistInfo, config: dict, B: int, seed: int, step: int, nimg: int, seconds0: float,
                 window: dict | None, balanced: bool, progress: bool, cpu0: float = 0.0):
        self.model, self.optimizers, self.stepper, self.out, self.info = model, optimizers, stepper, out, info
        self.config, self.B, self.seed, self.step, self.nimg, self.seconds0 = config, B, seed, step, nimg, seconds0
        self.data, self.num_classes = data, num_classes
        self.plan = BatchPlan(data.Y.cpu(), num_classes, seed=seed, balanced=balanced, device=data.index_device)
        self.window = LossWindow(info.device)
        self.resumed = window is not None
        self.window.load_state(window)
        self.progress = progress
        self.t0 = time.perf_counter()
        self.cpu0, self.c0 = cpu0, time.process_time()

    def seconds(self) -> float:
        return self.seconds0 + time.perf_counter() - self.t0

    def cpu_seconds(self) -> float:
        """CPU time of this process (all its threads) over the whole run, resumes included: on a shared
        machine the compute a wall-clock budget bought, for quality-vs-compute comparisons."""
        return self.cpu0 + time.process_time() - self.c0

    def window_state(self) -> dict[str, Any]:
        """The log window on the host (one sync); stops the run if a value became non-finite on any rank."""
        state = self.window.state()
        bad = LossWindow.non_finite(state)
        if broadcast_flags([bad is not None], self.info)[0]:
            raise _NonFinite(bad or ("a loss on another process", float("nan"), self.step - 1))
        return state

    def save(self, keep: int) -> Path | None:
        state = self.window_state()             # a non-finite state is never saved
        if not self.info.is_main:
            return None
        with unwrapped(self.model):
            return ckpt.save_checkpoint(self.out, self.model, self.optimizers, step=self.step, nimg=self.nimg,
                                        train_seconds=self.seconds(), config=self.config, keep=keep,
                                        loop_state={"window": state, "cpu_seconds": self.cpu_seconds()})

    def grid(self, per_class: int, logger, near_copies: bool = False) -> None:
        if not self.info.is_main:
            return
        from medfab.training.logging import class_grid, save_grid

        with unwrapped(self.model):      # rank 0 alone: no DDP collectives may run here
            g = class_grid(self.model, self.num_classes, per_class, self.seed, self.info.device)
        (self.out / "grids").mkdir(exist_ok=True)
        save_grid(self.out / "grids" / f"grid-{self.nimg / 1000:010.3f}.png", g)
        logger.image("samples", self.step, g)
        if near_copies:                  # memorisation guard: a metrics row of the grid's near-copy fraction
            from medfab.training.memorisation import NearCopyGuard

            if getattr(self, "guard", None) is None:
                self.guard = NearCopyGuard.fit(self.data.X.cpu().numpy(), self.data.Y.cpu().numpy(),
                                               self.num_classes)
            logger.scalars(self.step, {"kimg": self.nimg / 1000, **self.guard.check_grid(g, per_class)})

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.plan.local_batch(self.step, self.B, self.info.rank, self.info.world_size)
        return self.data.batch(idx)                                          # (b, C, H, W), (b,)

    def run(self, kimg, minutes, grid_every, grid_per_class, ckpt_every_minutes, keep, log_every,
            cpu_minutes=None) -> Path:
        from tqdm import tqdm

        from medfab.training.logging import RunLogger

        logger = RunLogger(self.out, self.step if self.resumed else None) if self.info.is_main else None
        by_kimg, by_cpu = kimg is not None, kimg is None and minutes is None
        clock = self.cpu_seconds if by_cpu else self.seconds             # what the bar counts when not images
        total = round(kimg * 1000) if by_kimg else round((cpu_minutes if by_cpu else minutes) * 60)
        bar = tqdm(total=total, initial=min(total, self.nimg if by_kimg else round(clock())),
                   unit="img" if by_kimg else ("cpu-s" if by_cpu else "s"),
                   disable=not (self.progress and self.info.is_main), dynamic_ncols=True, desc="train")
        grid_nimg = grid_every * 1000
        next_grid = (math.floor(self.nimg / grid_nimg) + 1) * grid_nimg
        last_ckpt = time.perf_counter()
        t_log, img_log = time.perf_counter(), self.nimg
        try:
            with _StopRequest() as stop:
                while True:
                    # Host-side flags only (over gloo under DDP): no step waits for the GPU here.
                    stopping, out_of_time, ckpt_due = broadcast_flags([
                        stop.requested, (minutes is not None and self.seconds() >= minutes * 60)
                        or (cpu_minutes is not None and self.cpu_seconds() >= cpu_minutes * 60),
                        self.info.is_main and time.perf_counter() - last_ckpt >= ckpt_every_minutes * 60],
                        self.info)
                    if stopping or out_of_time or (by_kimg and self.nimg >= kimg * 1000):
                        break
                    if ckpt_due:
                        self.save(keep)
                        last_ckpt = time.perf_counter()
                    x, y = self.batch()
                    torch.manual_seed(_step_seed(self.seed, self.step, self.info.rank))
                    try:
                        self.stepper.step(x, y, self.step, self.nimg, self.window)
                    except Exception as e:
                        if _is_oom(e):
                            raise MedfabError(f"out of memory at batch size {self.B}",
                                              "lower --batch-gpu (gradient accumulation keeps the batch), "
                                              "--batch-size or --size") from None
                        if type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
                            raise MedfabError(f"torch.compile failed: {str(e).splitlines()[0][:200]}",
                                              "train without --compile") from None
                        raise
                    self.step += 1
                    self.nimg += self.B
                    if by_kimg:
                        bar.update(self.B)
                    else:
                        bar.n = min(total, round(clock()))
                        bar.update(0)
                    if self.step % log_every == 0:
                        state = self.window_state()
                        now = time.perf_counter()
                        row = LossWindow.means(state)
                        row.update(kimg=self.nimg / 1000, seconds=self.seconds(), cpu_seconds=self.cpu_seconds(),
                                   images_per_s=(self.nimg - img_log) / max(now - t_log, 1e-9))
                        if logger:
                            logger.scalars(self.step, row)
                        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k not in ("kimg", "seconds")},
                                        refresh=False)
                        self.window.reset()
                        t_log, img_log = now, self.nimg
                    if self.nimg >= next_grid:
                        self.grid(grid_per_class, logger, near_copies=True)
                        next_grid += grid_nimg
                self.save(keep)
                if stopping:
                    raise KeyboardInterrupt
                self.grid(grid_per_class, logger)
        except _NonFinite as e:
            last = ckpt.latest_checkpoint(self.out)
            kept = f"the last good checkpoint is kept: {last}" if last else "no checkpoint was written yet"
            raise MedfabError(f"training stopped: loss '{e.key}' became {e.value} at step {e.step}; {kept}",
                              "lower the learning rate (--set lr=...) and rerun the same command to resume "
                              "from the last good checkpoint") from None
        finally:
            bar.close()
            if logger:
                logger.close()
        return self.out


class _NonFinite(Exception):
    def __init__(self, bad: tuple[str, float, int]):
        super().__init__(bad)
        self.key, self.value, self.step = bad
