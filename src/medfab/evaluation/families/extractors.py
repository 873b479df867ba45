"""Feature extractors for FD/KID, PRDC and privacy, fitted on real half A only."""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError


def make_extractor(space: str, ctx):
    """The feature extractor of ``space``, fitted on real half A only (FeatureNet saved to EVAL/featurenet).

    Why half A: an extractor fitted on all real images has seen half B but not the synthetic set, and a
    network that memorised its training images would place half B artificially close to half A. Fitted on
    half A, both half B and the synthetic set are unseen, so the baseline and the synthetic figure are fair.
    """
    if space == "featurenet":
        from medfab.evaluation.features.feature_net import FeatureNet

        net = FeatureNet.fit(ctx.half_a, seed=ctx.cfg.seed, epochs=ctx.cfg.epochs, device=ctx.device)
        net.save(ctx.out / "featurenet")
        return net
    if space == "radiomic":  # standardised with statistics of the real set
        from medfab.evaluation.features.radiomic import RadiomicFeatures

        ext = RadiomicFeatures()
    elif space == "pixel":  # principal components of the real set's downsampled pixels
        from medfab.evaluation.features.pixel_pca import PixelPCA

        ext = PixelPCA(seed=ctx.cfg.seed)
    else:
        raise MedfabError(
            f"no feature extractor named {space!r}", "use featurenet, pixel, radiomic or --extractor"
        )
    # fitting computes half A's features anyway (radiomics are slow): keep them
    ctx._feat[(space, "half_a")] = np.asarray(ext.fit_transform(ctx.half_a.x), dtype=np.float64)
    return ext
