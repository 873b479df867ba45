"""The five metric families of ``medfab evaluate``, each next to its real-vs-real baseline.

Each family takes the :class:`~medfab.evaluation.run.Context` and returns ``(data, figures)``: a
JSON-serialisable dict and a list of ``(png_path, caption)``. Inside a family a single metric that cannot be
computed (e.g. a class with too few images) becomes ``{"skipped": reason}`` and the rest still run.

Comparisons use equal sample sizes: ``ref`` = real half A, ``baseline`` = real half B, ``synth`` = a synthetic
subset with half B's class counts. ``data`` shapes (``G`` = "overall" or a class name)::

    fidelity:  {"histograms": {G: {"synth": {"js", "w1"}, "baseline": {...}}},
                "brain_mass": {"threshold": t, "groups": {G: {"synth": {"ks", "ks_p", "w1", "real_mean",
                               "synth_mean"}, "baseline": {...}}}},
                "distances": {space: {G: {"fd": {"synth": {value, lo, hi, n}, "baseline": {...}},
                                          "kid": {"synth": {"mean", "std"}, "baseline": {...}}}}}}
    diversity: {"msssim": {class: {"synth": {"mean", "std"}, "real": {...}}},
                "prdc": {G: {"synth": {precision, recall, density, coverage}, "baseline": {...}}},
                "collapse": {class: {"collapsed", "msssim_real", "msssim_synth", "coverage", "message"}},
                "feature_space": "featurenet"}
    class:     class_fidelity(...) output, with "real_test_baseline"
    utility:   utility_study(...) output
    privacy:   {"synth": privacy_audit(real train, real test, synthetic),
                "baseline": privacy_audit(real half A, real test, real half B)}   (closest-pair lists dropped)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medfab.errors import MedfabError
from medfab.evaluation import plots


def _try(fn: Callable, *args, **kwargs):
    """A metric value, or ``{"skipped": reason}`` when the metric refuses its input (MedfabError)."""
    try:
        return fn(*args, **kwargs)
    except MedfabError as e:
        return {"skipped": e.message}


def _scalars(d) -> dict:
    """Keep the summary numbers of a metric dict and drop per-image lists (they only feed figures)."""
    if not isinstance(d, dict):
        return d
    return {k: v for k, v in d.items() if not isinstance(v, (list, tuple, np.ndarray))}


def _groups(ctx, ts_name: str) -> dict[str, np.ndarray]:
    """Row indices of set ``ts_name`` for "overall" and for each class."""
    y = getattr(ctx, ts_name).y
    out = {"overall": np.arange(len(y))}
    out.update({c: np.flatnonzero(y == k) for k, c in enumerate(ctx.classes)})
    return out


def make_extractor(space: str, ctx):
    """The feature extractor of ``space``, fitted on real half A only (FeatureNet saved to EVAL/featurenet).

    Why half A: an extractor fitted on all real images has seen half B but not the synthetic set, and a
    network that memorised its training images would place half B artificially close to half A. Fitted on
    half A, both half B and the synthetic set are unseen, so the baseline and the synthetic figure are fair.
    """
    if space == "featurenet":
        from medfab.evaluation.features.feature_net import FeatureNet

        net = FeatureNet.fit(ctx.half_a, seed=ctx.cfg.seed, epochs=ctx.cfg.epochs)
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


def sample_grids(ctx) -> list[tuple]:
    """Per class: a row of synthetic images above a row of real ones (seeded picks)."""
    rng = np.random.default_rng(ctx.cfg.seed)
    n = ctx.cfg.gallery
    figs = []
    for k, c in enumerate(ctx.classes):
        rows = []
        for label, ts in (("synthetic", ctx.synth), ("real", ctx.real)):
            idx = np.flatnonzero(ts.y == k)
            pick = rng.choice(idx, size=min(n, len(idx)), replace=False)
            rows.append((label, ts.x[pick]))
        p = plots.image_grid(rows, ctx.fig(f"samples_{_safe(c)}.png"), title=c, per_row=n)
        figs.append((p, f"{c}: synthetic (top) beside real (bottom)"))
    return figs


def fidelity(ctx) -> tuple[dict, list]:
    from medfab.evaluation.brain_mass import compare_mass, fit_fixed_threshold
    from medfab.evaluation.distances import bootstrap, frechet_distance, kid
    from medfab.evaluation.histograms import compare_histograms

    cfg = ctx.cfg
    ga, gb, gs = _groups(ctx, "half_a"), _groups(ctx, "half_b"), _groups(ctx, "synth_m")
    a, b, s = ctx.half_a.x, ctx.half_b.x, ctx.synth_m.x
    data: dict = {"histograms": {}, "brain_mass": {}, "distances": {}}
    ctx.step("intensity histograms")
    for g in ga:
        data["histograms"][g] = {
            "synth": _scalars(_try(compare_histograms, a[ga[g]], s[gs[g]])),
            "baseline": _scalars(_try(compare_histograms, a[ga[g]], b[gb[g]])),
        }
    ctx.step("brain mass")
    t = fit_fixed_threshold(ctx.real.x)
    mass, mass_plot = {}, {}
    for g in ga:
        ms, mb = _try(compare_mass, a[ga[g]], s[gs[g]], t), _try(compare_mass, a[ga[g]], b[gb[g]], t)
        mass[g] = {"synth": _scalars(ms), "baseline": _scalars(mb)}
        if "real" in ms and "real" in mb:
            mass_plot[g] = {"real A": ms["real"], "real B": mb["synth"], "synthetic": ms["synth"]}
    data["brain_mass"] = {"threshold": t, "groups": mass}
    for space in cfg.features:
        try:  # one feature space that cannot run (e.g. radiomics on 3D) must not cost the others
            fa, fb, fs = (ctx.features(space, w) for w in ("half_a", "half_b", "synth_m"))
        except MedfabError as e:
            data["distances"][space] = {"skipped": e.message}
            continue
        ctx.step(f"FD/KID in {space} features")
        res = {}
        for g in ga:
            pair = {"synth": (fa[ga[g]], fs[gs[g]]), "baseline": (fa[ga[g]], fb[gb[g]])}
            # one fixed n for both pairs (FD is biased upwards at small n); value = median of the replicates
            fd = {
                k: _try(
                    bootstrap,
                    frechet_distance,
                    f1,
                    f2,
                    n_boot=cfg.n_boot,
                    seed=cfg.seed,
                    sample_size=min(len(f1), len(f2)),
                )
                for k, (f1, f2) in pair.items()
            }
            kd = {}
            for k, (f1, f2) in pair.items():
                v = _try(
                    kid,
                    f1,
                    f2,
                    subset_size=min(cfg.kid_subset, len(f1), len(f2)),
                    n_subsets=cfg.kid_subsets,
                    seed=cfg.seed,
                )
                kd[k] = {"mean": v[0], "std": v[1]} if isinstance(v, tuple) else v
            res[g] = {"fd": fd, "kid": kd}
        data["distances"][space] = res
    figs = [
        (
            plots.histogram_overlays(
                {g: (a[ga[g]], b[gb[g]], s[gs[g]]) for g in ga}, ctx.fig("histograms.png")
            ),
            "Pixel intensity histograms per class: real half A, real half B (dashed) and synthetic",
        )
    ]
    if mass_plot:
        figs.append(
            (
                plots.value_distributions(
                    mass_plot,
                    ctx.fig("brain_mass.png"),
                    title=f"Brain mass (fraction of pixels above {t:.2f})",
                    xlabel="brain mass",
                ),
                "Brain-mass distributions per class, at one threshold learnt on the real images",
            )
        )
    return data, figs


def diversity(ctx) -> tuple[dict, list]:
    from medfab.evaluation.diversity import collapse_check, msssim_pairs
    from medfab.evaluation.prdc import prdc

    cfg = ctx.cfg
    space = cfg.features[0]
    fa, fb, fs = (ctx.features(space, w) for w in ("half_a", "half_b", "synth_m"))
    ga, gb, gs = _groups(ctx, "half_a"), _groups(ctx, "half_b"), _groups(ctx, "synth_m")
    a, s = ctx.half_a.x, ctx.synth_m.x
    data: dict = {"feature_space": space, "msssim": {}, "prdc": {}, "collapse": {}}
    dist_plot = {}
    ctx.step("MS-SSIM within each class")
    for c in ctx.classes:
        ms = _try(msssim_pairs, s[gs[c]], cfg.msssim_pairs, cfg.seed)
        mr = _try(msssim_pairs, a[ga[c]], cfg.msssim_pairs, cfg.seed)
        data["msssim"][c] = {"synth": _scalars(ms), "real": _scalars(mr)}
        if "values" in ms and "values" in mr:
            dist_plot[c] = {"real": mr["values"], "synthetic": ms["values"]}
    ctx.step(f"precision / recall / density / coverage ({space})")
    for g in ga:
        k = int(max(1, min(5, len(ga[g]) - 1, len(gs[g]) - 1)))
        data["prdc"][g] = {
            "synth": _try(prdc, fa[ga[g]], fs[gs[g]], k=k),
            "baseline": _try(prdc, fa[ga[g]], fb[gb[g]], k=k),
            "k": k,
        }
    ctx.step("collapse check")
    for c in ctx.classes:
        k = int(max(1, min(5, len(ga[c]) - 2, len(gs[c]) - 2)))
        data["collapse"][c] = _try(
            collapse_check,
            a[ga[c]],
            s[gs[c]],
            fa[ga[c]],
            fs[gs[c]],
            n_pairs=cfg.msssim_pairs,
            seed=cfg.seed,
            k=k,
        )
    figs = []
    if dist_plot:
        figs.append(
            (
                plots.value_distributions(
                    dist_plot,
                    ctx.fig("msssim.png"),
                    title="MS-SSIM between random pairs (higher = less diverse)",
                    xlabel="MS-SSIM",
                ),
                "MS-SSIM of random pairs within each class, real half A vs synthetic",
            )
        )
    return data, figs


def class_fidelity_family(ctx) -> tuple[dict, list]:
    from medfab.evaluation.class_fidelity import class_fidelity

    ctx.step("training the real-image classifier")
    data = class_fidelity(ctx.real, ctx.synth, seed=ctx.cfg.seed, epochs=ctx.cfg.epochs, real_test=ctx.test)
    figs = [
        (
            plots.confusion_matrix(data["confusion"], ctx.classes, ctx.fig("confusion.png")),
            "Synthetic images classified by a CNN trained on real images (row-normalised)",
        )
    ]
    base = data.get("real_test_baseline")
    if isinstance(base, dict) and "confusion" in base:
        figs.append(
            (
                plots.confusion_matrix(
                    base["confusion"],
                    ctx.classes,
                    ctx.fig("confusion_real.png"),
                    title="Baseline: real test images, same classifier",
                ),
                "The same classifier on real test images: how well real images are recognised",
            )
        )
    return data, figs


def utility(ctx) -> tuple[dict, list]:
    from medfab.evaluation.utility import utility_study

    cfg = ctx.cfg
    ctx.step(f"training CNNs ({cfg.seeds} seed(s))")
    data = utility_study(
        ctx.real,
        ctx.test,
        ctx.synth,
        seeds=tuple(range(cfg.seed, cfg.seed + cfg.seeds)),
        shares=tuple(cfg.shares),
        epochs=cfg.epochs,
        progress=False,
    )
    return data, utility_figures(data, ctx)


def utility_figures(data: dict, ctx) -> list:
    """Bars of the main regimes and the share-sweep curve (utility_study's ``table`` / ``share_sweep``)."""
    figs = []
    rows = [
        r for r in data.get("table", []) if not str(r.get("training_data", "")).startswith("synthetic share")
    ]
    metrics = [m for m in ("balanced_accuracy", "macro_f1", "accuracy") if rows and m in rows[0]]
    if rows and metrics:
        figs.append(
            (
                plots.utility_bars(rows, metrics, ctx.fig("utility.png")),
                "CNN trained on each training set, tested on the real test set (error bars: std over seeds)",
            )
        )
    sweep = data.get("share_sweep") or []
    curves = {
        m: ([r[m] for r in sweep], [r.get(f"{m}_std", 0.0) for r in sweep])
        for m in ("balanced_accuracy", "macro_f1")
        if sweep and m in sweep[0]
    }
    if curves:
        figs.append(
            (
                plots.share_sweep([r["share"] for r in sweep], curves, ctx.fig("share_sweep.png")),
                "Score on real test images as the synthetic share of a fixed-size training set grows",
            )
        )
    return figs


def privacy(ctx) -> tuple[dict, list]:
    from medfab.evaluation.privacy import privacy_audit

    space = ctx.cfg.features[0]
    ctx.step("nearest training neighbours of synthetic images")
    synth = privacy_audit(
        ctx.real,
        ctx.test,
        ctx.synth,
        features_train=ctx.features(space, "real"),
        features_holdout=ctx.features(space, "test"),
        features_synth=ctx.features(space, "synth"),
        top_k=ctx.cfg.gallery,
    )
    ctx.step("real-vs-real baseline")
    base = _try(
        privacy_audit,
        ctx.half_a,
        ctx.test,
        ctx.half_b,
        features_train=ctx.features(space, "half_a"),
        features_holdout=ctx.features(space, "test"),
        features_synth=ctx.features(space, "half_b"),
        top_k=1,
    )
    figs = []
    pix = synth.get("pixel") or {}
    pairs = pix.get("closest_pairs") or []
    if pairs:
        si = np.array([p["synth_index"] for p in pairs])
        ti = np.array([p["train_index"] for p in pairs])
        figs.append(
            (
                plots.pair_gallery(
                    ctx.synth.x[si],
                    ctx.real.x[ti],
                    [p["distance"] for p in pairs],
                    ctx.fig("closest_pairs.png"),
                ),
                "The synthetic images closest to a training image (RMS pixel distance d): look for copies",
            )
        )
    if pix.get("synthetic_nn_distances") and pix.get("holdout_nn_distances"):
        dist = {
            "distance to nearest training image": {
                "real": pix["holdout_nn_distances"],
                "synthetic": pix["synthetic_nn_distances"],
            }
        }
        figs.append(
            (
                plots.value_distributions(
                    dist,
                    ctx.fig("nn_distances.png"),
                    title="Memorisation check",
                    xlabel="RMS pixel distance (real = held-out test images)",
                ),
                (
                    "Nearest-training-image distances: synthetic images should not sit closer than "
                    "held-out real ones"
                ),
            )
        )
    return {"synth": _drop_lists(synth), "baseline": _drop_lists(base), "feature_space": space}, figs


def _drop_lists(d):
    """Privacy dicts without the per-image distance lists (figures only); closest pairs are kept."""
    if not isinstance(d, dict):
        return d
    return {k: _drop_lists(v) for k, v in d.items() if not k.endswith("_nn_distances")}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
