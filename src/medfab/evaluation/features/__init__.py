"""Feature extractors for distribution distances (the first of the three metric stages).

Every extractor maps images (N, 1, H, W) in [-1, 1] to features (N, F) float64. Those that learn something
(PCA components, standardisation, the feature network) learn it from the REAL set only, so the synthetic set
is always measured in the real set's coordinates.

- ``pixel``: :class:`~.pixel_pca.PixelPCA` (no training, no network);
- ``featurenet``: :class:`~.feature_net.FeatureNet`, medfab's medical embedding trained on real images;
- ``radiomic``: :class:`~.radiomic.RadiomicFeatures`, the Fréchet Radiomic Distance feature set;
- ``user``: :func:`~.user_extractor.load_extractor`, a local file the user supplies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.errors import MedfabError

EXTRACTORS = ("pixel", "featurenet", "radiomic", "user")


def _featurenet(net=None, real_y=None, classes=None, real_x=None, seed: int = 0, epochs: int = 15):
    from medfab.evaluation.features.feature_net import FeatureNet

    if isinstance(net, FeatureNet):
        return net
    if isinstance(net, (str, Path)):
        return FeatureNet.load(net)
    if real_y is not None and real_x is not None:
        from medfab.data.tensors import TensorSet

        names = classes or [str(c) for c in range(int(np.max(real_y)) + 1)]
        ts = TensorSet(real_x, np.asarray(real_y, dtype=np.int64), list(names), [""] * len(real_y))
        return FeatureNet.fit(ts, seed=seed, epochs=epochs)
    raise MedfabError("the 'featurenet' extractor needs a trained feature network",
                      "pass net=FeatureNet.fit(real) (or a saved folder), or real_y= labels to train one")


def extract_pair(name: str, real_x: np.ndarray, synth_x: np.ndarray, **kwargs
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Features of the real and the synthetic set, with anything learnt fitted on the real set.

    kwargs per extractor: ``pixel``: size, n_components, seed; ``radiomic``: features, mask, bin_width,
    n_jobs, backend; ``featurenet``: net (FeatureNet or folder) or real_y (+ classes, seed, epochs) to
    train one; ``user``: path, feature_layer.
    """
    if name == "pixel":
        from medfab.evaluation.features.pixel_pca import PixelPCA

        ex = PixelPCA(**kwargs)
        return ex.fit_transform(real_x), ex.transform(synth_x)
    if name == "radiomic":
        from medfab.evaluation.features.radiomic import RadiomicFeatures

        ex = RadiomicFeatures(**kwargs)
        return ex.fit_transform(real_x), ex.transform(synth_x)
    if name == "featurenet":
        net = _featurenet(real_x=real_x, **kwargs)
        return net.transform(real_x), net.transform(synth_x)
    if name == "user":
        from medfab.evaluation.features.user_extractor import load_extractor

        if "path" not in kwargs:
            raise MedfabError("the 'user' extractor needs path=", "pass the TorchScript or safetensors file")
        ex = load_extractor(**kwargs)
        return ex.transform(real_x), ex.transform(synth_x)
    raise MedfabError(f"unknown feature extractor {name!r}", f"use one of {', '.join(EXTRACTORS)}")


def extract(name: str, x: np.ndarray, *, fit_on: np.ndarray | None = None, **kwargs) -> np.ndarray:
    """Features of one set ``x``; extractors that learn are fitted on ``fit_on`` (the real set; default x)."""
    ref = x if fit_on is None else fit_on
    return extract_pair(name, ref, x, **kwargs)[1]
