"""One small CNN classifier, shared by every stage that needs a supervised model.

Used for: the phantom's difficulty benchmark, class fidelity (does a classifier trained on real images
recognise the requested class?), the utility study (train on real / synthetic / mixed, test on real), the
medical feature network for Fréchet distances (its penultimate layer), and the anomaly-detection baseline.
Blocks take ``spatial_dims`` so 2D slices and 3D volumes share one code path.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CPU_BATCH = 8    # images per inference batch on the CPU (cache-sized at 128^2; see _in_batches)


def _conv(spatial_dims: int):
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def _norm(spatial_dims: int):
    return nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d


class SmallCNN(nn.Module):
    """conv-BN-ReLU x2 + pool, four stages (width, 2w, 4w, 8w), global average pool, linear head."""

    def __init__(self, num_classes: int, *, in_channels: int = 1, width: int = 32, spatial_dims: int = 2,
                 dropout: float = 0.3):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        conv, norm = _conv(spatial_dims), _norm(spatial_dims)
        pool = nn.MaxPool2d(2) if spatial_dims == 2 else nn.MaxPool3d(2)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(4):
            c = width * 2**i
            layers += [conv(c_in, c, 3, padding=1, bias=False), norm(c), nn.ReLU(inplace=True),
                       conv(c, c, 3, padding=1, bias=False), norm(c), nn.ReLU(inplace=True), pool]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, num_classes)
        self.feature_dim = c_in

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 8 * width): the 'medical feature network' embedding."""
        h = self.body(x)                      # (B, 8w, H/16, W/16)
        return h.flatten(2).mean(-1)          # (B, 8w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mild, label-preserving augmentation: left-right flip, shift by up to 1/16, brightness +-10 %."""
    B = x.shape[0]
    flip = torch.rand(B, generator=g) < 0.5
    x = torch.where(flip.view(B, *[1] * (x.ndim - 1)), x.flip(-1), x)
    s = max(1, x.shape[-1] // 16)
    dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=g))
    x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    gain = 1 + 0.1 * (2 * torch.rand(B, generator=g) - 1)
    return ((x + 1) * gain.view(B, *[1] * (x.ndim - 1)) - 1).clamp(-1, 1)


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 16,
    seed: int = 0,
    augment: bool = True,
    class_weighted: bool = True,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> SmallCNN:
    """Train :class:`SmallCNN` on ``x`` (N, 1, H, W[, D]) in [-1, 1] and ``y`` (N,); deterministic in ``seed``.

    ``class_weighted`` weights the loss by inverse class frequency, so an imbalanced set (52 vs 2,560
    images) does not teach the model to ignore its minority classes.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels")
    if len(x) == 0:
        raise ValueError("cannot train a classifier on an empty set")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = SmallCNN(num_classes, in_channels=x.shape[1], width=width, spatial_dims=x.ndim - 2).to(device)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    counts = torch.bincount(yt, minlength=num_classes).float()
    weight = None
    if class_weighted:
        weight = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros(()))
        weight = weight.to(device)
    steps_per_epoch = max(1, int(np.ceil(len(x) / batch_size)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    it = range(epochs)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="classifier", unit="epoch")
    model.train()
    for _ in it:
        perm = torch.randperm(len(x), generator=g)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            if len(idx) < 2:          # BatchNorm needs 2+ samples
                continue
            xb = xt[idx]
            if augment:
                xb = _augment(xb, g)
            loss = F.cross_entropy(model(xb.to(device)), yt[idx].to(device), weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def inference_copy(model: SmallCNN) -> SmallCNN:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the convolution before it, for inference only.

    Eval-mode BatchNorm is an affine map per channel, so it folds exactly into the conv's weights and a bias: one
    memory pass fewer per layer, the same features to ~1e-7 relative. A copy, so the trained model (and its
    BatchNorm statistics, which training and saving need) is left as it is."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    layers, out = list(fast.body), []
    while layers:
        m = layers.pop(0)
        if isinstance(m, nn.Conv2d | nn.Conv3d) and layers and isinstance(layers[0], nn.BatchNorm2d | nn.BatchNorm3d):
            m = fuse_conv_bn_eval(m, layers.pop(0))
        out.append(m)
    fast.body = nn.Sequential(*out)
    return fast


def _in_batches(model: SmallCNN, x: np.ndarray, fn, batch_size: int | None) -> np.ndarray:
    """``fn(model, batch)`` over ``x`` in batches on the model's device, under inference mode; float64 (N, ...).

    Runs :func:`inference_copy` (BatchNorm folded) and 2D batches channels-last (oneDNN's fast layout). On the CPU,
    batches of ``CPU_BATCH`` (at 128^2 a 16-channel activation is 1 MB per image: small batches stay in cache) go
    to ``torch.get_num_threads()`` worker threads, one intra-op thread each: no barrier per layer, which on a
    shared, loaded machine made 2-thread small batches 2-4x slower than one thread. Same numbers to ~1e-7."""
    from concurrent.futures import ThreadPoolExecutor

    dev = next(model.parameters()).device
    cpu = dev.type == "cpu"
    batch_size = batch_size or (CPU_BATCH if cpu else 256)
    fmt = torch.channels_last if x.ndim == 4 else torch.contiguous_format
    fast = inference_copy(model).to(memory_format=fmt)

    def one(i: int) -> torch.Tensor:
        with torch.inference_mode():
            xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32).to(dev, memory_format=fmt)
            return fn(fast, xb).float().cpu()

    starts = range(0, len(x), batch_size)
    threads = torch.get_num_threads()
    if not cpu or threads == 1 or len(starts) == 1:
        return torch.cat([one(i) for i in starts]).double().numpy()
    torch.set_num_threads(1)                      # per worker; restored below
    try:
        with ThreadPoolExecutor(threads) as pool:
            return torch.cat(list(pool.map(one, starts))).double().numpy()
    finally:
        torch.set_num_threads(threads)


def predict_proba(model: SmallCNN, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """Class probabilities (N, K) as float64."""
    return _in_batches(model, x, lambda m, xb: F.softmax(m(xb), -1), batch_size)


def embed(model: SmallCNN, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """Penultimate-layer features (N, F) as float64."""
    return _in_batches(model, x, lambda m, xb: m.features(xb), batch_size)
