"""Training speed: medfab's full training step through its loop vs a reference's canonical loop, same process.

Usage (CPU):  nice -n 10 .venv/bin/python bench/bench_train_speed.py [--widths 8 64] [--sizes 32] [--batch 64]
Usage (GPU):  .venv/bin/python bench/bench_train_speed.py --device cuda      (bf16 autocast in medfab's loop;
              defaults then: widths 64, sizes 64 128; reports img/s and peak memory)

medfab runs through ``medfab.training.fit`` (batches drawn on the device, per-step seeding, phases, optimiser
steps, loss logging every ``--steps`` steps: everything a real run does except sample grids and checkpoints,
which fall outside the timed rows): each round resumes the run for ``--steps`` more steps as one log window, and
the time per step is read from that ``metrics.jsonl`` row (``images_per_s``). The reference runs its canonical loop: a random batch from the
same data tensor on the device, the plain step, the losses read back (``.item()``) every ``--steps`` steps.
Rounds alternate (reference, medfab, reference, ...) so machine noise hits both alike; the table gives the median
time per step and the median per-round ratio medfab / reference (< 1: medfab is faster).

Matched networks: ``dcgan`` is medfab's DCGAN set up as the canonical class-conditional DCGAN (ngf = ndf =
width, z = 100, BN in G and D, non-saturating BCE loss, no spectral norm / DiffAugment / EMA) against
``CDCGANRef`` (pytorch/examples DCGAN with a label embedding concatenated to z and a label plane to the image);
``pix2pix`` is medfab's two-stage class-conditional pix2pix (BN in D, no SN / DiffAugment / EMA) against
``CondPix2PixRef``: the junyanz U-Net + PatchGAN step made class-conditional the same way (class planes and a noise
plane in G's input, class planes in D's) plus the stage-A step (a plain conditional VAE on the 16x16 maps, half of
B's maps from its reconstructions), i.e. the same work written plainly; ``pix2pix-plain`` is the same medfab model
against the plain unconditional one-stage junyanz step (``Pix2PixRef``), so the ratio includes the design's extra
work (about 20 % for the extra input channels and 10-15 % for stage A at width 8).
``dcgan-default`` is medfab's DCGAN with its small-data defaults (SN, hinge, DiffAugment, EMA).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from reference_nets import CDCGANRef, CondPix2PixRef, Pix2PixRef, VAERef

from medfab.data.tensors import TensorSet
from medfab.models.registry import build_model
from medfab.training.loop import fit

K = 4           # classes
N = 512         # training images


def medfab_fields(name: str, width: int) -> tuple[str, dict]:
    matched_dcgan = {"g_width": width, "d_width": width, "z_dim": 100, "embed_dim": 32, "max_channels": 64 * width,
                     "loss": "ns", "d_norm": "batch", "d_spectral_norm": False, "diffaug": "none", "ema": False}
    return {"dcgan": ("dcgan", matched_dcgan),
            "dcgan-default": ("dcgan", {"g_width": width, "d_width": width}),
            "pix2pix": ("pix2pix", {"g_width": width, "d_width": width, "map_width": min(32, width),
                                    "d_norm": "batch", "d_spectral_norm": False, "diffaug": "none", "ema": False}),
            "vae": ("vae", {"width": width})}[name.removesuffix("-plain")]


def reference(name: str, size: int, width: int, device: torch.device):
    if name.startswith("dcgan"):
        return CDCGANRef(size, K, ngf=width, ndf=width, device=device)
    if name == "pix2pix":
        return CondPix2PixRef(size, K, ngf=width, ndf=width, map_width=min(32, width)).to(device)
    if name == "pix2pix-plain":
        return Pix2PixRef(size, ngf=width, ndf=width).to(device)
    ref = VAERef(size, K, width=width).to(device)
    return ref


class RefLoop:
    """The canonical loop: batch from the device tensor, step, losses to the host every ``log_every`` steps."""

    def __init__(self, ref, X: torch.Tensor, Y: torch.Tensor, batch: int, bf16: bool):
        self.ref, self.X, self.Y, self.B, self.bf16 = ref, X, Y, batch, bf16

    def run(self, steps: int, sync) -> float:
        t = time.perf_counter()
        out = None
        for _ in range(steps):
            idx = torch.randint(0, len(self.X), (self.B,), device=self.X.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                out = self.ref.step(self.X[idx], self.Y[idx])
        if out is not None:
            [float(v.detach()) for v in out]              # the canonical loop prints its losses
        sync()
        return time.perf_counter() - t


class MedfabLoop:
    """medfab's ``fit``, resumed for ``steps`` more steps per round; per-step time from its metrics rows."""

    def __init__(self, name: str, size: int, width: int, data: TensorSet, batch: int, device: str, out: Path,
                 **fit_options):
        self.name, self.size, self.width, self.data, self.B = name, size, width, data, batch
        self.device, self.out, self.fit_options = device, out, fit_options
        self.nimg = 0
        torch.manual_seed(0)
        reg, fields = medfab_fields(name, width)
        self.model, _ = build_model(reg, image_size=size, num_classes=K, batch_size=batch, **fields)

    def run(self, steps: int) -> list[float]:
        """Seconds per step of each timed row of this round (one row: the round is one log window)."""
        self.nimg += steps * self.B
        fit(self.model, self.data, out=self.out, kimg=self.nimg / 1000, log_every=steps, progress=False,
            grid_every=1e9, ckpt_every_minutes=1e9, keep_checkpoints=1, config={}, device=self.device,
            **self.fit_options)
        rows = [json.loads(line) for line in (self.out / "metrics.jsonl").read_text().splitlines()]
        return [self.B / rows[-1]["images_per_s"]]


def bench_one(name, size, width, args, device, tmp: Path) -> dict:
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, size, size, generator=g) * 2 - 1                      # (N, 1, S, S)
    y = torch.randint(0, K, (N,), generator=g)
    data = TensorSet(x.numpy(), y.numpy(), [f"c{k}" for k in range(K)], [str(i) for i in range(N)])
    torch.manual_seed(0)
    ref = RefLoop(reference(name, size, width, device), x.to(device), y.to(device), args.batch, args.ref_bf16)
    ours = MedfabLoop(name, size, width, data, args.batch, str(device), tmp / f"{name}-{size}-{width}",
                      compile=args.compile, channels_last=args.channels_last)
    ref.run(args.warmup, sync)                                                 # allocator, kernels, autotuning
    ours.run(args.warmup)
    t_ref, t_our, mem_ref, mem_our = [], [], 0, 0
    for _ in range(args.rounds):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t_ref.append(ref.run(args.steps, sync) / args.steps)
        if cuda:
            mem_ref = max(mem_ref, torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        t_our.extend(ours.run(args.steps))
        if cuda:
            mem_our = max(mem_our, torch.cuda.max_memory_allocated())
    ratio = statistics.median(o / r for r, o in zip(t_ref, t_our))
    row = {"model": name, "size": size, "width": width, "batch": args.batch, "ref_ms": 1e3 * statistics.median(t_ref),
           "medfab_ms": 1e3 * statistics.median(t_our), "ratio": ratio,
           "ref_img_s": args.batch / statistics.median(t_ref), "medfab_img_s": args.batch / statistics.median(t_our),
           "ref_peak_gib": mem_ref / 2**30, "medfab_peak_gib": mem_our / 2**30}
    print(f"{name:14s} {size:4d}px w{width:<3d} ref {row['ref_ms']:8.2f} ms/step  medfab {row['medfab_ms']:8.2f} "
          f"ms/step  medfab/ref {ratio:5.2f}" + (f"  peak {row['ref_peak_gib']:.2f} / {row['medfab_peak_gib']:.2f} GiB"
                                                  if cuda else ""), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K")
    ap.add_argument("--models", nargs="+", default=["dcgan", "pix2pix"],
                    choices=["dcgan", "dcgan-default", "pix2pix", "pix2pix-plain", "vae"])
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 32 on CPU, 64 128 on CUDA")
    ap.add_argument("--widths", type=int, nargs="+", default=None, help="default: 8 64 on CPU, 64 on CUDA")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None, help="steps per timed round (default 10 CPU, 50 CUDA)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CPU, 20 CUDA)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--ref-bf16", action="store_true", help="run the reference under bf16 autocast too (CUDA)")
    ap.add_argument("--compile", action="store_true", help="medfab: torch.compile the networks")
    ap.add_argument("--channels-last", action="store_true", help="medfab: channels-last memory format")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    from medfab.device import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    args.sizes = args.sizes or ([64, 128] if cuda else [32])
    args.widths = args.widths or ([64] if cuda else [8, 64])
    args.steps = args.steps or (50 if cuda else 10)
    args.warmup = args.warmup or (20 if cuda else 3)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for width in args.widths:
                for name in args.models:
                    rows.append(bench_one(name, size, width, args, device, Path(tmp)))
    dev = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} thread(s)"
    print(f"\ntime per training step, batch {args.batch}, {dev}, median of {args.rounds} rounds of {args.steps} steps"
          + (" (medfab: bf16 autocast; reference: " + ("bf16" if args.ref_bf16 else "fp32") + ")" if cuda else ""))
    print(f"{'model':14s} {'size':>4s} {'width':>5s} {'ref ms':>9s} {'medfab ms':>10s} {'medfab/ref':>10s} "
          f"{'ref img/s':>10s} {'medfab img/s':>12s}" + ("  peak GiB ref/medfab" if cuda else ""))
    for r in rows:
        print(f"{r['model']:14s} {r['size']:4d} {r['width']:5d} {r['ref_ms']:9.2f} {r['medfab_ms']:10.2f} "
              f"{r['ratio']:10.2f} {r['ref_img_s']:10.0f} {r['medfab_img_s']:12.0f}"
              + (f"  {r['ref_peak_gib']:.2f} / {r['medfab_peak_gib']:.2f}" if cuda else ""))
    if args.json:
        args.json.write_text(json.dumps({"device": dev, "args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
