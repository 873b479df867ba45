"""One optimisation step of every phase of a model: the part of the loop that touches gradients.

A model returns one loss per phase and micro-batch (:meth:`GenerativeModel.phase_loss`, stylegan2-ada's
phases, edm2's ``EDM2Loss``); :class:`PhaseStepper` owns the rest: zero_grad, backward (outside autocast),
gradient accumulation over micro-batches (DDP ``no_sync`` on all but the last), optional gradient clipping,
learning-rate warm-up keyed on images seen, optimiser steps and EMA updates. Logged values stay on the device in
a :class:`LossWindow`; the loop reads them back only at its log and checkpoint points (no host sync per step).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

from medfab.errors import MedfabError
from medfab.models import blocks
from medfab.models.base import Phase, StepContext
from medfab.models.ema import ema_decay, lerp_ema


class LossWindow:
    """Device-side sums of each phase's values since the last log row, and the first non-finite step.

    Rows are aligned to step numbers (one every ``log_every`` steps), and :meth:`state` / :meth:`load_state`
    carry an unfinished window through a checkpoint, so a resumed run writes the rows an uninterrupted one does.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.keys: dict[str, tuple[str, ...]] = {}        # phase -> ("loss", logged names...)
        self.sums: dict[str, torch.Tensor] = {}           # phase -> (len(keys),) float32
        self.counts: dict[str, int] = {}                  # phase -> steps summed (host: which phases run is known)
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)

    def add(self, phase: str, keys: tuple[str, ...], values: torch.Tensor, step: int) -> None:
        self.keys.setdefault(phase, keys)
        self.sums[phase] = self.sums[phase] + values if phase in self.sums else values
        self.counts[phase] = self.counts.get(phase, 0) + 1
        ok = torch.isfinite(values).all() | (self.first_bad >= 0)
        self.first_bad = torch.where(ok, self.first_bad, step)

    def state(self) -> dict[str, Any]:
        """Host copy (one transfer): {"keys", "sums", "counts", "first_bad"}; JSON-able, float32 sums kept exact."""
        phases = list(self.sums)
        flat = torch.cat([self.sums[p].double() for p in phases] + [self.first_bad.view(1).double()])
        host = flat.tolist()
        sums, i = {}, 0
        for p in phases:
            n = len(self.keys[p])
            sums[p] = host[i:i + n]
            i += n
        return {"keys": {p: list(self.keys[p]) for p in phases}, "sums": sums, "counts": dict(self.counts),
                "first_bad": int(host[-1])}

    def load_state(self, state: dict[str, Any] | None) -> None:
        self.reset()
        for p, keys in (state or {}).get("keys", {}).items():
            self.keys[p] = tuple(keys)
            self.sums[p] = torch.tensor(state["sums"][p], dtype=torch.float32, device=self.device)
            self.counts[p] = int(state["counts"][p])

    def reset(self) -> None:
        self.sums, self.counts = {}, {}
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)

    @staticmethod
    def _named(state: dict[str, Any]):
        """(name, window sum, steps) of every value; a phase's "loss" is named ``loss_<phase>``."""
        for p, keys in state["keys"].items():
            for k, v in zip(keys, state["sums"][p]):
                yield (f"loss_{p}" if k == "loss" else k), v, state["counts"][p]

    @staticmethod
    def means(state: dict[str, Any]) -> dict[str, float]:
        """Every value averaged over the steps of the window its phase ran in."""
        return {k: v / n for k, v, n in LossWindow._named(state)}

    @staticmethod
    def non_finite(state: dict[str, Any]) -> tuple[str, float, int] | None:
        """(name, value, step) of the first non-finite value of the window, or None."""
        if state["first_bad"] < 0:
            return None
        bad = next(((k, v) for k, v, _ in LossWindow._named(state) if not math.isfinite(v)), ("loss", math.nan))
        return bad[0], bad[1], state["first_bad"]


class PhaseStepper:
    """Runs one training step: for each due phase, micro-batches -> backward -> clip -> optimiser step -> EMA."""

    def __init__(self, model, optimizers: dict[str, torch.optim.Optimizer], *,
                 batch_size: int,                       # global batch of a step
                 batch_gpu: int | None = None,          # micro-batch per process; None = the whole local batch
                 world_size: int = 1,
                 grad_clip: float | None = None,        # max global gradient norm per optimiser; None = off
                 lr_warmup_kimg: float = 0.0,           # lr ramps linearly over this many kimg (0 = off)
                 autocast: Callable[[], Any] = contextlib.nullcontext):
        self.model, self.optimizers, self.autocast = model, optimizers, autocast
        self.batch_size, self.world_size = batch_size, world_size
        self.grad_clip, self.lr_warmup_kimg = grad_clip, lr_warmup_kimg
        self.phases: list[Phase] = list(model.phases())
        for ph in self.phases:
            if ph.optimizer not in optimizers or ph.interval < 1:
                raise ValueError(f"phase {ph} names no optimiser of configure_optimizers() ({list(optimizers)}) "
                                 "or has interval < 1")
        local = batch_size // world_size
        self.batch_gpu = int(batch_gpu or local)
        if self.batch_gpu < 1 or local % self.batch_gpu:
            raise MedfabError(f"--batch-gpu {batch_gpu} does not divide the per-process batch {local}",
                              f"use a divisor of {local}, or leave --batch-gpu unset (no accumulation)")
        self.n_micro = local // self.batch_gpu
        # Under DDP a network's forward and backward must fall in the same no_sync state; a forward cached by one
        # phase for the next (DCGAN's fake) would break that with accumulation, so the cache is then per phase.
        self.share_cache = not (world_size > 1 and self.n_micro > 1)
        # Base learning rates as configured (recorded before a checkpoint restores the optimisers' groups).
        self.base_lr = {n: [g["lr"] for g in opt.param_groups] for n, opt in optimizers.items()}
        self.params = {n: [p for g in opt.param_groups for p in g["params"]] for n, opt in optimizers.items()}
        self.ema = self._ema_owners()
        self._keys: dict[str, tuple[str, ...]] = {}

    def _ema_owners(self) -> dict[str, list[tuple[str, str]]]:
        """Optimiser name -> [(EMA attribute, source attribute)] whose source that optimiser trains."""
        owner = {id(p): n for n, ps in self.params.items() for p in ps}
        out: dict[str, list[tuple[str, str]]] = {}
        for ema_name, src in type(self.model).ema_pairs.items():
            if getattr(self.model, ema_name, None) is None:        # EMA switched off in the config
                continue
            first = next(blocks.unwrap(getattr(self.model, src)).parameters())
            if id(first) not in owner:
                raise ValueError(f"no optimiser trains '{src}', the source of EMA '{ema_name}'")
            out.setdefault(owner[id(first)], []).append((ema_name, src))
        return out

    def lr_factor(self, nimg: int) -> float:
        if self.lr_warmup_kimg <= 0:
            return 1.0
        return min(1.0, (nimg + self.batch_size) / (self.lr_warmup_kimg * 1000))

    def _no_sync(self, last: bool):
        """DDP: gradients are all-reduced only on the last micro-batch of a step."""
        stack = contextlib.ExitStack()
        if not last:
            for name in type(self.model).ddp_modules:
                net = getattr(self.model, name, None)
                if isinstance(net, torch.nn.parallel.DistributedDataParallel):
                    stack.enter_context(net.no_sync())
        return stack

    def _ema_decay(self, ctx: StepContext, updates: int) -> float:
        custom = getattr(self.model, "ema_decay_at", None)
        if custom is not None:
            return float(custom(ctx))
        return ema_decay(updates, self.model.config.ema_decay)

    def due(self, step: int) -> list[Phase]:
        return [ph for ph in self.phases if step % ph.interval == ph.interval - 1]

    def step(self, x: torch.Tensor, y: torch.Tensor, step: int, nimg: int, window: LossWindow | None = None,
             *, skip_non_finite: bool = False) -> dict[str, dict[str, torch.Tensor]]:
        """One optimisation step on this process's batch ``x`` (b, C, ...), ``y`` (b,); returns each phase's values.

        ``skip_non_finite`` (tests and scripts outside the loop only: it syncs) leaves the optimiser of a phase
        whose loss is not finite unstepped and stops the step there.
        """
        n = self.n_micro
        xs, ys = (x, ), (y, )
        if n > 1:
            xs, ys = x.split(self.batch_gpu), y.split(self.batch_gpu)
        caches: list[dict[str, Any]] = [{} for _ in range(n)]
        factor = self.lr_factor(nimg)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for ph in self.due(step):
            opt = self.optimizers[ph.optimizer]
            for g, lr in zip(opt.param_groups, self.base_lr[ph.optimizer]):
                g["lr"] = lr * factor
            opt.zero_grad(set_to_none=True)
            total = None
            for i in range(n):
                ctx = StepContext(step, nimg, self.batch_size, i, n, caches[i] if self.share_cache else {})
                with self._no_sync(i == n - 1):
                    with self.autocast():
                        losses = self.model.phase_loss(ph.name, xs[i], ys[i], ctx)
                    loss = losses["loss"]
                    (loss / n if n > 1 else loss).backward()           # outside autocast
                keys = self._keys.get(ph.name)
                if keys is None or len(keys) != len(losses):
                    keys = self._keys[ph.name] = ("loss", *[k for k in losses if k != "loss"])
                vals = torch.stack([_scalar(losses[k], loss) for k in keys])
                total = vals if total is None else total + vals
            if n > 1:
                total = total / n
            out[ph.name] = dict(zip(keys, total))
            if skip_non_finite and not bool(torch.isfinite(total).all()):
                return out
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params[ph.optimizer], self.grad_clip, foreach=True)
            opt.step()
            for ema_name, src in self.ema.get(ph.optimizer, ()):
                ctx = StepContext(step, nimg, self.batch_size, n - 1, n)
                lerp_ema(getattr(self.model, ema_name), blocks.unwrap(getattr(self.model, src)),
                         self._ema_decay(ctx, step // ph.interval))
            if window is not None:
                window.add(ph.name, keys, total, step)
        return out


def _scalar(v, like: torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(v):
        return v.detach().float().reshape(())
    return torch.full((), float(v), device=like.device)     # a fill kernel, not a blocking host copy


def train_step(model, x: torch.Tensor, y: torch.Tensor, step: int,
               optimizers: dict[str, torch.optim.Optimizer], *, nimg: int | None = None) -> dict[str, float]:
    """One step outside the loop (tests, scripts): the phases of ``step`` on one batch, values as floats.

    A phase whose loss is not finite is left unstepped and ends the step (the loop instead stops the run).
    """
    stepper = PhaseStepper(model, optimizers, batch_size=len(y))
    vals = stepper.step(x, y, step, step * len(y) if nimg is None else nimg, skip_non_finite=True)
    return {(f"loss_{p}" if k == "loss" else k): float(v) for p, d in vals.items() for k, v in d.items()}
