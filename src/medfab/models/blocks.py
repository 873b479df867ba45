"""Network building blocks written once for 2D and 3D (``spatial_dims``), plus small helpers the models share.

Every layer that depends on dimensionality is built here, so the generators and discriminators read the
same for slices (B, C, H, W) and volumes (B, C, D, H, W).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from medfab.errors import MedfabError

NORMS = ("batch", "instance", "group", "none")


def conv(spatial_dims: int, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
         *, bias: bool = True, sn: bool = False) -> nn.Module:
    cls = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    layer = cls(c_in, c_out, kernel_size, stride, padding, bias=bias)
    return spectral_norm(layer) if sn else layer


def conv_transpose(spatial_dims: int, c_in: int, c_out: int, kernel_size: int, stride: int = 1,
                   padding: int = 0, *, bias: bool = True) -> nn.Module:
    cls = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
    return cls(c_in, c_out, kernel_size, stride, padding, bias=bias)


def norm(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    """A normalisation layer by name; "group" and "instance" do not depend on the batch (train == eval)."""
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}', choose one of {NORMS}")


class Down(nn.Sequential):
    """conv 4x4 stride 2 -> norm -> LeakyReLU(0.2): halves every spatial side (DCGAN / pix2pix encoder)."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, *, norm_kind: str = "batch",
                 sn: bool = False, act: bool = True):
        layers = [conv(spatial_dims, c_in, c_out, 4, 2, 1, bias=norm_kind == "none", sn=sn),
                  norm(norm_kind, spatial_dims, c_out)]
        if act:
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        super().__init__(*layers)


class Up(nn.Sequential):
    """transposed conv 4x4 stride 2 -> norm -> ReLU (-> dropout): doubles every spatial side."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, *, norm_kind: str = "batch",
                 dropout: float = 0.0):
        layers = [conv_transpose(spatial_dims, c_in, c_out, 4, 2, 1, bias=norm_kind == "none"),
                  norm(norm_kind, spatial_dims, c_out), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


def pyramid_channels(base: int, n: int, max_channels: int) -> list[int]:
    """Widths base, 2*base, 4*base, ... capped at ``max_channels``: n entries, finest first."""
    return [min(base * 2**i, max_channels) for i in range(n)]


def check_image_size(image_size: int, *, minimum: int = 16) -> int:
    """log2(image_size); the networks halve/double the side, so it must be a power of two."""
    k = round(math.log2(image_size)) if image_size > 0 else 0
    if image_size < minimum or 2**k != image_size:
        raise MedfabError(f"image_size {image_size} is not supported by this model",
                          f"use a power of two >= {minimum} (e.g. 32, 64, 128, 256)")
    return k


def class_planes(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """One-hot labels broadcast to constant planes: (B,) -> (B, K, *spatial of ``like``)."""
    onehot = F.one_hot(y, num_classes).to(like.dtype)                 # (B, K)
    shape = onehot.shape + (1,) * (like.dim() - 2)
    return onehot.view(shape).expand(-1, -1, *like.shape[2:])


def check_labels(y: torch.Tensor, num_classes: int) -> None:
    if y.dtype != torch.int64 or y.dim() != 1:
        raise MedfabError(f"labels must be a 1-D int64 tensor, got {tuple(y.shape)} {y.dtype}",
                          "pass class indices, e.g. torch.tensor([0, 1, 1])")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise MedfabError(f"label out of range [0, {num_classes})",
                          "labels index the model's classes; check num_classes in the model config")


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Skip weight gradients of ``module`` while another network's loss flows through it.

    Saves roughly a third of D's backward in the G step. Under DDP the parameters stay trainable, because
    DDP expects every forward with gradients to be followed by a reduction over all of its parameters.
    """
    if isinstance(module, nn.parallel.DistributedDataParallel):
        yield
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def finite(*losses: torch.Tensor) -> bool:
    """True when every loss is finite; a model returns its losses unstepped otherwise (the loop stops)."""
    return all(bool(torch.isfinite(v).all()) for v in losses)


def randn(shape: tuple[int, ...], generator, device: torch.device) -> torch.Tensor:
    """Standard normal draw from ``generator``: a ``torch.Generator`` (CPU generators work for any device: drawn,
    then moved), a :class:`medfab.models.noise.StackedRandomGenerator` (row i from image i's own seed), or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        return generator.randn(tuple(shape), device)
    if generator is not None and generator.device != device:
        return torch.randn(shape, generator=generator, device=generator.device).to(device)
    return torch.randn(shape, generator=generator, device=device)


def rand(shape: tuple[int, ...], generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draw; same generator rules as :func:`randn`."""
    if generator is not None and not isinstance(generator, torch.Generator):
        return generator.rand(tuple(shape), device)
    if generator is not None and generator.device != device:
        return torch.rand(shape, generator=generator, device=generator.device).to(device)
    return torch.rand(shape, generator=generator, device=device)