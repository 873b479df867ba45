"""progan3d training speed and memory per stage on ixi_t1, beside a plain-PyTorch reference of the same network.

Usage (CPU):  nice -n 10 .venv/bin/python bench/bench_progan3d.py --data ../shared/data/ixi_t1 --size 32 \
                  --fmap-base 256 --steps 4 --rounds 2
Usage (GPU):  .venv/bin/python bench/bench_progan3d.py --data ../shared/data/ixi_t1 --device cuda --size 64 \
                  [--with-seg] [--size 128 --grad-checkpoint]

Stages: at a stage's stable period (alpha = 1) the active layers of progan3d grown to side R are exactly those of
a progan3d whose final side is R (feature maps depend only on the resolution, ``fmap_base / R``), so each stage is
timed as its own run at side R: 4^3, 8^3, ... up to ``--size``. Fade-in periods run both the new and the previous
output layer (a few percent more) and are not timed separately.

medfab runs through ``medfab.training.fit`` (the one loop: batches on the device, per-step seeding, phases,
optimiser steps, EMA, loss logging every ``--steps`` steps; bf16 autocast on CUDA), resumed round after round for
``--steps`` more steps; volumes/s is read from that round's ``metrics.jsonl`` row. The reference is the same
network written plainly (equalised-lr conv/linear, pixel norm, minibatch stddev, Karras 2018 Table 2) trained by a
canonical WGAN-GP loop (separate critic calls for reals, fakes and interpolates; ``.item()`` of the losses every
``--steps`` steps; bf16 autocast on CUDA as well). Rounds alternate so machine noise hits both alike; the table
gives medians. Peak memory: ``torch.cuda.max_memory_allocated`` per stage on CUDA; on the CPU the process's
max RSS (monotone over the run) and medfab's own estimate.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --- the reference: ProGAN at a fixed side, written plainly -------------------------------------------------------
SQRT2 = math.sqrt(2)


class WSConv3d(nn.Conv3d):
    def __init__(self, c_in, c_out, k, gain=SQRT2):
        super().__init__(c_in, c_out, k, padding=k // 2)
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)
        self.c = gain / math.sqrt(c_in * k**3)

    def forward(self, x):
        return F.conv3d(x, self.weight * self.c, self.bias, padding=self.padding)


class WSLinear(nn.Linear):
    def __init__(self, c_in, c_out, gain=SQRT2):
        super().__init__(c_in, c_out)
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)
        self.c = gain / math.sqrt(c_in)

    def forward(self, x):
        return F.linear(x, self.weight * self.c, self.bias)


def pn(x):
    return x / torch.sqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


class RefG(nn.Module):
    def __init__(self, z_dim, widths, channels):
        super().__init__()
        self.w0 = widths[0]
        self.fc = WSLinear(z_dim, widths[0] * 64, gain=math.sqrt(2) / 8)
        self.c0 = WSConv3d(widths[0], widths[0], 3)
        self.ups = nn.ModuleList(nn.ModuleList([WSConv3d(a, b, 3), WSConv3d(b, b, 3)]) for a, b in itertools.pairwise(widths))
        self.rgb = WSConv3d(widths[-1], channels, 1, gain=1.0)

    def forward(self, z):
        h = pn(lrelu(self.fc(pn(z)).view(-1, self.w0, 4, 4, 4)))
        h = pn(lrelu(self.c0(h)))
        for a, b in self.ups:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = pn(lrelu(b(pn(lrelu(a(h))))))
        return self.rgb(h)


class RefD(nn.Module):
    def __init__(self, widths, channels):
        super().__init__()
        self.rgb = WSConv3d(channels, widths[-1], 1)
        self.downs = nn.ModuleList(nn.ModuleList([WSConv3d(b, b, 3), WSConv3d(b, a, 3)])
                                   for a, b in reversed(list(itertools.pairwise(widths))))
        self.c = WSConv3d(widths[0] + 1, widths[0], 3)
        self.fc = WSLinear(widths[0] * 64, widths[0])
        self.out = WSLinear(widths[0], 1, gain=1.0)

    def forward(self, x):
        h = lrelu(self.rgb(x))
        for a, b in self.downs:
            h = F.avg_pool3d(lrelu(b(lrelu(a(h)))), 2)
        g = min(4, h.shape[0])
        y = h.reshape(g, -1, *h.shape[1:]).float()
        s = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt().flatten(1).mean(1).to(h.dtype)
        h = torch.cat([h, s.view(-1, 1, 1, 1, 1).repeat(g, 1, *h.shape[2:])], 1)
        h = lrelu(self.fc(lrelu(self.c(h)).flatten(1)))
        return self.out(h).squeeze(1)


def reference_round(G, D, G_ema, opt_g, opt_d, X, steps, batch, z_dim, autocast):
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), device=X.device)
        real = X[idx]
        with autocast():
            with torch.no_grad():
                fake = G(torch.randn(batch, z_dim, device=X.device))
            d_real, d_fake = D(real).float(), D(fake.to(real.dtype)).float()
            eps = torch.rand(batch, 1, 1, 1, 1, device=X.device)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).float().sum(), x_hat, create_graph=True)
            gp = (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()
            d_loss = d_fake.mean() - d_real.mean() + 10 * gp + 1e-3 * d_real.pow(2).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        with autocast():
            g_loss = -D(G(torch.randn(batch, z_dim, device=X.device))).float().mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - 0.999)
    return d_loss.item(), g_loss.item()


# --- the benchmark ------------------------------------------------------------------------------------------------
def load(data: Path, size: int, with_seg: bool):
    from medfab.data.pipeline import dataset_tensors
    from medfab.data.volumes import add_volume_inputs, single_class_dataset

    ds = single_class_dataset(data / "t1")
    ts = dataset_tensors(ds, size=size, progress=False)
    if with_seg:
        ts, _ = add_volume_inputs(ts, {}, data / "t1", ds, data / "seg")
    return ts


def box(x: np.ndarray, side: int) -> np.ndarray:
    t = torch.as_tensor(np.asarray(x))
    while t.shape[-1] > side:
        t = F.avg_pool3d(t, 2)
    return t.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/ixi_t1"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--min-size", type=int, default=8, help="smallest stage timed")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--fmap-base", type=int, default=1024)
    p.add_argument("--fmap-max", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--with-seg", action="store_true", help="image + DLMUSE tissue channels (6 channels)")
    p.add_argument("--grad-checkpoint", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args()

    from medfab.data.tensors import TensorSet
    from medfab.device import resolve_device
    from medfab.models.progan3d.memory import GIB, estimate_bytes, peak_bytes, reset_peak
    from medfab.models.progan3d.networks import level_channels
    from medfab.models.registry import build_model
    from medfab.training.loop import fit

    dev = resolve_device(a.device)
    cuda = dev.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    t0 = time.perf_counter()
    ts = load(a.data, a.size, a.with_seg)
    print(f"data: {len(ts)} volumes {tuple(ts.x.shape[1:])} loaded in {time.perf_counter() - t0:.0f} s on {dev}")
    results = []
    side = a.min_size
    while side <= a.size:
        widths = level_channels(4, side, a.fmap_base, a.fmap_max)
        x = box(ts.x, side)
        data = TensorSet(x, ts.y, ts.classes, ts.keys)
        C = x.shape[1]
        fields = {"image_size": side, "num_classes": 1, "channels": C, "spatial_dims": 3, "batch_size": a.batch,
                      "fmap_base": a.fmap_base, "fmap_max": a.fmap_max, "z_dim": a.z_dim, "fade_kimg": 0.0, "stable_kimg": 0.0,
                      "grad_checkpoint": a.grad_checkpoint, "report_memory": False}
        torch.manual_seed(0)
        model, _ = build_model("progan3d", **fields)
        torch.manual_seed(0)
        G, D = RefG(a.z_dim, widths, C).to(dev), RefD(widths, C).to(dev)
        G_ema = copy.deepcopy(G).requires_grad_(False)
        opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
        X = torch.as_tensor(x, device=dev)
        reference_round(G, D, G_ema, opt_g, opt_d, X, 1, a.batch, a.z_dim, autocast)        # warm-up
        ref_s, med_s, ref_mem, med_mem = [], [], 0.0, 0.0
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            fit(model, data, out=run, kimg=a.batch * a.steps / 1000, progress=False, config={}, device=str(dev),
                log_every=a.steps, grid_every=1e9)                                           # warm-up round
            for r in range(a.rounds):
                reset_peak(dev)
                t = time.perf_counter()
                reference_round(G, D, G_ema, opt_g, opt_d, X, a.steps, a.batch, a.z_dim, autocast)
                ref_s.append((time.perf_counter() - t) / a.steps)
                ref_mem = max(ref_mem, peak_bytes(dev)[0])
                reset_peak(dev)
                nimg = a.batch * (r + 2) * a.steps
                fit(model, data, out=run, kimg=nimg / 1000, progress=False, config={}, device=str(dev),
                    log_every=a.steps, grid_every=1e9)
                row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
                med_s.append(a.batch / row["images_per_s"])
                med_mem = max(med_mem, peak_bytes(dev)[0])
        n_params = sum(p.numel() for p in model.parameters())
        est = estimate_bytes(n_params, side, 3, a.batch, widths[-1], grad_checkpoint=a.grad_checkpoint)
        rs, ms = statistics.median(ref_s), statistics.median(med_s)
        res = {"stage": f"{side}^3", "channels": C, "widths": widths, "batch": a.batch,
               "medfab_vol_per_s": a.batch / ms, "reference_vol_per_s": a.batch / rs, "ratio": rs / ms,
               "medfab_peak_gib": med_mem / GIB, "reference_peak_gib": ref_mem / GIB, "estimate_gib": est / GIB,
               "memory_kind": peak_bytes(dev)[1]}
        results.append(res)
        print(f"{res['stage']:>6} C={C} widths={widths}: medfab {res['medfab_vol_per_s']:.2f} vol/s, reference "
              f"{res['reference_vol_per_s']:.2f} vol/s, ratio {res['ratio']:.2f}x; peak {res['medfab_peak_gib']:.2f} "
              f"/ {res['reference_peak_gib']:.2f} GiB ({res['memory_kind']}), estimate {res['estimate_gib']:.2f} GiB",
              flush=True)
        side *= 2
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
