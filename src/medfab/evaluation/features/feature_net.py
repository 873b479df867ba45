"""The medical feature network: medfab's own embedding for Fréchet distances, trained on REAL images.

ImageNet-Inception features (FID) know nothing of MRI and are not available offline, so medfab trains the
shared :class:`~medfab.evaluation.classifier.SmallCNN` to classify the real training images and uses its
penultimate layer (global-average-pooled, 8 * width features) as the embedding. The raw embedding has an
arbitrary scale (it depends on training length and BatchNorm statistics), so features are standardised with
the mean / std of the real training set: distances are then in units of real variability, comparable between
networks. Saved as safetensors plus a JSON config: loading rebuilds the network from the config and never
executes stored code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from medfab.errors import MedfabError
from medfab.evaluation.checks import check_images

WEIGHTS, CONFIG = "featurenet.safetensors", "featurenet.json"
MEAN, SCALE = "_feature_mean", "_feature_scale"      # standardisation stored beside the weights


class FeatureNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: list[str]             # class names the network was trained to tell apart
    image_shape: list[int]         # (1, H, W) or (1, D, H, W) it was trained on; features need the same
    width: int = 16
    epochs: int = 15
    seed: int = 0
    n_train: int = 0               # real images it saw (provenance)


class FeatureNet:
    """``FeatureNet.fit(real)`` / ``FeatureNet.load(dir)`` -> ``.transform(x)`` (N, 8 * width) float64,
    standardised with the real training set's feature mean / std."""

    def __init__(self, model, config: FeatureNetConfig, mean: np.ndarray, scale: np.ndarray):
        self.model = model.eval()
        self.config = config
        self.mean = mean          # (F,) real-set mean of the raw embedding
        self.scale = scale        # (F,) real-set std (1 where a feature is constant)

    @classmethod
    def fit(cls, real, seed: int = 0, epochs: int = 15, *, width: int = 16, batch_size: int = 64,
            progress: bool = False, device="cpu") -> FeatureNet:
        """Train on a real :class:`~medfab.data.tensors.TensorSet` (class-weighted, augmented, seeded), on
        ``device`` (a torch device or "auto" / "cpu" / "cuda[:K]"); the network stays there for :meth:`transform`."""
        from medfab.device import resolve_device
        from medfab.evaluation.classifier import embed, train_classifier

        x = check_images(real.x, "real training images", min_n=2)
        if len(real.classes) < 2 or len(np.unique(real.y)) < 2:
            raise MedfabError("the feature network learns by telling classes apart; the real set has one class",
                              "train it on a labelled real set with at least 2 classes")
        model = train_classifier(x, real.y, len(real.classes), epochs=epochs, batch_size=batch_size,
                                 width=width, seed=seed, progress=progress, device=resolve_device(str(device)))
        cfg = FeatureNetConfig(classes=list(real.classes), image_shape=list(x.shape[1:]), width=width,
                               epochs=epochs, seed=seed, n_train=len(x))
        f = embed(model, x)                                  # (N, F) raw embedding of the real set
        std = f.std(0)
        return cls(model, cfg, f.mean(0), np.where(std > 1e-12, std, 1.0))

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        import torch

        tensors = {k: v.cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors[MEAN], tensors[SCALE] = torch.from_numpy(self.mean), torch.from_numpy(self.scale)
        save_file(tensors, str(d / WEIGHTS))
        (d / CONFIG).write_text(json.dumps(self.config.model_dump(), indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> FeatureNet:
        from safetensors.torch import load_file

        from medfab.evaluation.classifier import SmallCNN

        d = Path(directory)
        if not (d / WEIGHTS).is_file() or not (d / CONFIG).is_file():
            raise MedfabError(f"no feature network in {d} (expected {WEIGHTS} and {CONFIG})",
                              "train one with FeatureNet.fit(real).save(dir)")
        cfg = FeatureNetConfig(**json.loads((d / CONFIG).read_text()))
        model = SmallCNN(len(cfg.classes), in_channels=cfg.image_shape[0], width=cfg.width,
                         spatial_dims=len(cfg.image_shape) - 1)
        tensors = load_file(str(d / WEIGHTS))
        mean, scale = tensors.pop(MEAN).numpy(), tensors.pop(SCALE).numpy()
        model.load_state_dict(tensors)
        return cls(model, cfg, mean, scale)

    def to(self, device) -> FeatureNet:
        """Run :meth:`transform` on ``device`` (a torch device or "auto" / "cpu" / "cuda[:K]")."""
        from medfab.device import resolve_device

        self.model.to(resolve_device(str(device)))
        return self

    @property
    def feature_dim(self) -> int:
        return self.model.feature_dim

    def transform(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """(N, F) standardised features; ``batch_size`` None: 8 on the CPU (cache-sized), 256 on a GPU."""
        from medfab.evaluation.classifier import embed

        x = check_images(x)
        if list(x.shape[1:]) != self.config.image_shape:
            raise MedfabError(
                f"images are {tuple(x.shape[1:])} but the feature network was trained on "
                f"{tuple(self.config.image_shape)}",
                "load the images with the same --size as the real training set, or retrain the network",
            )
        return (embed(self.model, x, batch_size=batch_size) - self.mean) / self.scale      # (N, F)
