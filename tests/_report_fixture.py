"""A fake but realistic evaluation folder for the report tests.

results.json is written by hand, in the shapes the metric modules return, validated into each family's typed
result (medfab.evaluation.families), and the figures are drawn with medfab.evaluation.plots, so the report is
tested without running any metric.
"""

from __future__ import annotations

import numpy as np

from medfab.evaluation import families as F
from medfab.evaluation import plots
from medfab.evaluation.results import FamilyResult, Figure, Results, write_results

CLASSES = ["MildDemented", "ModerateDemented", "NonDemented"]


def _bootstrap(v, w=0.15):
    return {
        "value": v,
        "lo": v * (1 - w),
        "hi": v * (1 + w),
        "n": 120,
        "n_real": 120,
        "n_synth": 120,
        "n_boot": 100,
    }


def _utility_row(name, bacc, std=0.02):
    row = {"model": "SmallCNN (width 16)", "training_data": name, "n_train": 360}
    for m, v in (
        ("accuracy", bacc + 0.05),
        ("balanced_accuracy", bacc),
        ("macro_precision", bacc - 0.02),
        ("macro_recall", bacc),
        ("macro_f1", bacc - 0.03),
    ):
        row[m], row[f"{m}_std"] = v, std
    return row


def make_eval(root, *, collapsed="ModerateDemented"):
    """A realistic evaluation folder: results.json + figures drawn by medfab's plot functions."""
    rng = np.random.default_rng(0)
    fig = root / "figures"
    imgs = np.tanh(rng.normal(size=(8, 1, 32, 32))).astype(np.float32)
    samples = [
        Figure(
            file=str(
                plots.image_grid(
                    [("synthetic", imgs), ("real", imgs[::-1])], fig / f"samples_{c}.png", title=c
                ).relative_to(root)
            ),
            caption=f"{c}: synthetic (top) beside real (bottom)",
        )
        for c in CLASSES
    ]
    groups = ["overall"] + CLASSES
    px = {g: (rng.uniform(-1, 1, 500), rng.uniform(-1, 1, 500), rng.uniform(-1, 1, 500)) for g in groups}
    fid_figs = [
        plots.histogram_overlays(px, fig / "histograms.png"),
        plots.value_distributions(
            {
                g: {
                    "real A": rng.normal(0.3, 0.05, 40),
                    "real B": rng.normal(0.3, 0.05, 40),
                    "synthetic": rng.normal(0.32, 0.05, 40),
                }
                for g in groups
            },
            fig / "brain_mass.png",
            title="Brain mass",
            xlabel="brain mass",
        ),
    ]
    fidelity = {
        "histograms": {
            g: {"synth": {"js": 0.004, "w1": 0.01}, "baseline": {"js": 0.003, "w1": 0.008}} for g in groups
        },
        "brain_mass": {
            "threshold": -0.62,
            "groups": {
                g: {
                    "synth": {"ks": 0.12, "ks_p": 0.3, "w1": 0.01, "real_mean": 0.31, "synth_mean": 0.33},
                    "baseline": {"ks": 0.09, "ks_p": 0.6, "w1": 0.008, "real_mean": 0.31, "synth_mean": 0.30},
                }
                for g in groups
            },
        },
        "distances": {
            "featurenet": {
                g: {
                    "fd": {"synth": _bootstrap(12.0), "baseline": _bootstrap(3.0)},
                    "kid": {"synth": {"mean": 0.02, "std": 0.004}, "baseline": {"mean": 0.001, "std": 0.002}},
                }
                for g in groups
            }
        },
    }
    # a class with too few images: the metric module refused, the orchestrator stored the reason
    fidelity["distances"]["featurenet"]["ModerateDemented"]["fd"]["synth"] = {
        "skipped": "synthetic features: 1 row(s), at least 2 are needed"
    }
    fidelity["distances"]["radiomic"] = {"skipped": "radiomic features are computed per 2D image"}
    collapse = {
        c: {
            "collapsed": c == collapsed,
            "msssim_real": 0.31,
            "msssim_synth": 0.62 if c == collapsed else 0.33,
            "coverage": 0.2 if c == collapsed else 0.9,
            "message": "...",
        }
        for c in CLASSES
    }
    diversity = {
        "feature_space": "featurenet",
        "msssim": {
            c: {
                "synth": {"mean": collapse[c]["msssim_synth"], "std": 0.1},
                "real": {"mean": 0.31, "std": 0.1},
            }
            for c in CLASSES
        },
        "prdc": {
            g: {
                "synth": {"precision": 0.8, "recall": 0.7, "density": 0.9, "coverage": 0.8},
                "baseline": {"precision": 0.85, "recall": 0.85, "density": 1.0, "coverage": 0.95},
                "k": 5,
            }
            for g in groups
        },
        "collapse": collapse,
    }
    div_figs = [
        plots.value_distributions(
            {c: {"real": rng.uniform(0, 0.5, 30), "synthetic": rng.uniform(0, 0.7, 30)} for c in CLASSES},
            fig / "msssim.png",
            title="MS-SSIM",
            xlabel="MS-SSIM",
        )
    ]
    conf = [[30, 5, 5], [2, 20, 18], [4, 1, 35]]
    cls = {
        "classes": CLASSES,
        "confusion": conf,
        "recognition_rate": {"MildDemented": 0.75, "ModerateDemented": 0.5, "NonDemented": 0.875},
        "balanced_accuracy": 0.708,
        "missing_classes": [],
        "real_test_baseline": {
            "confusion": conf,
            "recognition_rate": {c: 0.8 for c in CLASSES},
            "balanced_accuracy": 0.8,
            "missing_classes": [],
        },
    }
    cls_figs = [plots.confusion_matrix(conf, CLASSES, fig / "confusion.png")]
    table = [
        _utility_row("real", 0.62),
        _utility_row("synthetic", 0.55),
        _utility_row("real+synthetic", 0.64),
        _utility_row("real+synthetic top-up", 0.66),
    ] + [_utility_row(f"synthetic share {s:g}", 0.62 - 0.07 * s) for s in (0, 0.5, 1)]
    sweep = [
        {
            "share": s,
            "n_train": 360,
            **{
                k: v
                for k, v in _utility_row("", 0.62 - 0.07 * s).items()
                if k not in ("model", "training_data", "n_train")
            },
        }
        for s in (0, 0.5, 1)
    ]
    utility = {
        "classes": CLASSES,
        "seeds": [0, 1, 2],
        "n_test": 300,
        "regimes": {"real": {"mean": {"balanced_accuracy": 0.62}}},
        "share_sweep": sweep,
        "table": table,
        "ratio_to_real": {"balanced_accuracy": 0.887, "macro_f1": 0.86, "goal": 0.9, "meets_goal": False},
        "recall_delta": {
            "real+synthetic": {c: 0.01 for c in CLASSES},
            "real+synthetic top-up": {"MildDemented": 0.0, "ModerateDemented": 0.12, "NonDemented": -0.03},
        },
        "notes": [],
    }
    util_figs = [
        plots.utility_bars(
            [r for r in table if "share" not in r["training_data"]],
            ["balanced_accuracy", "macro_f1"],
            fig / "utility.png",
        ),
        plots.share_sweep(
            [0, 0.5, 1],
            {"balanced_accuracy": ([0.62, 0.585, 0.55], [0.02, 0.02, 0.02])},
            fig / "share_sweep.png",
        ),
    ]
    space = {
        "copy_threshold": 0.21,
        "threshold_source": "5th percentile of holdout",
        "copy_rate": 0.012,
        "n_copies": 2,
        "holdout_copy_rate": 0.05,
        "nn_distance": {
            "synthetic": {"mean": 0.3, "median": 0.29, "p5": 0.22, "min": 0.15},
            "holdout": {"mean": 0.28, "median": 0.27, "p5": 0.21, "min": 0.12},
        },
        "nn_ratio": {
            "synthetic": {"mean": 0.9, "median": 0.92, "p5": 0.8, "min": 0.7},
            "holdout": {"mean": 0.9, "median": 0.91, "p5": 0.8, "min": 0.7},
        },
        "authenticity": {"synthetic": 0.6, "holdout": 0.55, "difference": -0.05},
        "membership_auc": 0.51,
        "closest_pairs": [{"synth_index": 0, "train_index": 3, "distance": 0.15, "ratio": 0.7}],
    }
    privacy = {
        "synth": {
            "n_train": 360,
            "n_holdout": 300,
            "n_synth": 360,
            "copy_rate": 0.012,
            "membership_auc": 0.51,
            "pixel": space,
            "features": space,
        },
        "baseline": {"copy_rate": 0.04, "membership_auc": 0.5, "pixel": {**space, "copy_rate": 0.04}},
        "feature_space": "featurenet",
    }
    priv_figs = [plots.pair_gallery(imgs[:4], imgs[4:], [0.15, 0.2, 0.22, 0.25], fig / "closest_pairs.png")]

    def fam(result_type, data, figs, seconds=1.0):
        return FamilyResult(
            data=result_type.model_validate(data),
            seconds=seconds,
            figures=[Figure(file=str(p.relative_to(root)), caption=p.stem) for p in figs],
        )

    counts = {c: 120 for c in CLASSES}
    res = Results(
        medfab_version="0.1.0",
        config={
            "real_train": "/data/train",
            "real_test": "/data/test",
            "synthetic": "/data/synth",
            "quick": False,
        },
        classes=CLASSES,
        counts={"real_train": counts, "real_test": counts, "synthetic": counts},
        samples=samples,
        families={
            "fidelity": fam(F.FidelityResult, fidelity, fid_figs),
            "diversity": fam(F.DiversityResult, diversity, div_figs),
            "class": fam(F.ClassFidelityResult, cls, cls_figs),
            "utility": fam(F.UtilityResult, utility, util_figs),
            "privacy": fam(F.PrivacyResult, privacy, priv_figs),
        },
    )
    write_results(res, root / "results.json")
    return root


def make_eval_3d(root):
    """A 3D evaluation folder: a collapsed generator (low voxel variance, high MS-SSIM) and one near-copy."""
    from medfab.evaluation.volumes import plots as P

    rng = np.random.default_rng(0)
    fig = root / "figures"
    vols = np.tanh(rng.normal(size=(4, 1, 16, 16, 16))).astype(np.float32)
    samples = [
        P.orthogonal_slices([("real 1", vols[0]), ("synthetic 1", vols[1])], fig / "volumes_orthogonal.png"),
        P.montage([("synthetic", vols[:2]), ("real", vols[2:])], fig / "volumes_montage.png"),
    ]
    figs = [
        P.variance_maps(
            {"real A": vols.var(0)[0], "synthetic": 0.1 * vols.var(0)[0]}, fig / "voxel_variance.png"
        ),
        plots.value_distributions(
            {"grey matter": {"real A": rng.normal(0.5, 0.02, 30), "synthetic": rng.normal(0.45, 0.005, 30)}},
            fig / "volume_distributions.png",
            title="Tissue volumes",
            xlabel="share",
        ),
    ]
    data = {
        "size": 64,
        "histogram": {"synth": {"js": 0.01, "w1": 0.02}, "baseline": {"js": 0.008, "w1": 0.015}},
        "brain_volume": {"ks": 0.2, "ks_baseline": 0.15, "real_mean": 0.31, "synth_mean": 0.30, "baseline_mean": 0.31},
        "tissue_source": "real: seg_volumes.csv",
        "tissues": {
            "csf": {"ks": 0.3, "ks_baseline": 0.2, "real_mean": 0.03, "synth_mean": 0.03},
            "grey matter": {"ks": 0.9, "ks_baseline": 0.2, "real_mean": 0.5, "synth_mean": 0.45},
            "white matter": {"skipped": "synthetic: 1 value(s); a distribution needs at least 2"},
        },
        "distances": {
            "fd": {"synth": {"value": 40.0, "lo": 35.0, "hi": 45.0, "n": 25}, "baseline": {"value": 10.0, "lo": 8.0,
                                                                                          "hi": 12.0, "n": 25}},
            "kid": {"synth": {"mean": 0.5, "std": 0.1}, "baseline": {"mean": 0.01, "std": 0.02}},
        },
        "msssim": {"synth": {"mean": 0.93, "std": 0.01}, "real": {"mean": 0.71, "std": 0.04}},
        "voxel_variance": {"real": 0.05, "synth": 0.01, "baseline": 0.048, "ratio": 0.2, "baseline_ratio": 0.96},
        "privacy": {
            "min_synth": 0.01, "median_synth": 0.2, "min_holdout": 0.15, "median_holdout": 0.22, "n_synth": 25,
            "flagged": [3], "closest": [{"synthetic": "s003.nii.gz", "training": "t017.nii.gz", "distance": 0.01}],
        },
    }  # fmt: skip
    res = Results(
        medfab_version="0.1.0",
        config={"real_train": "/data/t1", "real_test": None, "synthetic": "/gen", "size": 64, "dims": 3},
        classes=[],
        counts={"real_train": {"volumes": 100}, "synthetic": {"volumes": 25}},
        samples=[Figure(file=str(p.relative_to(root)), caption=p.stem) for p in samples],
        families={
            "volumes": FamilyResult(
                data=F.VolumesResult.model_validate(data),
                figures=[Figure(file=str(p.relative_to(root)), caption=p.stem) for p in figs],
            )
        },
    )
    write_results(res, root / "results.json")
    return root
