"""``model_card.json``: where a synthetic set came from and what it must not be used for."""

from __future__ import annotations

import datetime as _dt
from typing import Any

INTENDED_USE = [
    "augmenting or balancing training data for machine-learning research",
    "teaching, prototyping and testing of image-analysis pipelines",
    "studying how generative models behave on small medical data sets",
]

NOT_FOR = [
    "diagnosis, screening, treatment or any other decision about a patient",
    "a substitute for real validation or test data: evaluate models on real images only",
    "estimating disease prevalence, class frequencies or a model's real-world performance",
    "claiming that the images show real patients or real anatomy/pathology",
    "re-identification of, or inference about, the individuals in the training data",
]

LIMITATIONS = [
    "a generator trained on few images can copy (memorise) training images; check nearest neighbours",
    "class fidelity is only as good as the model and its training budget; check it with medfab evaluate",
    "generated images inherit the biases of the training data (scanner, site, population, labels)",
]


def build_model_card(*, run_configs: dict[str, dict[str, Any]], generated: dict[str, int], seed: int,
                     bit_depth: int, mode: str, sampler: dict[str, Any] | None = None, batch_size: int = 1,
                     device: str = "cpu") -> dict[str, Any]:
    """``run_configs``: config(s) returned by ``load_run`` (one per class for a per-class run)."""
    from medfab import __version__

    first = next(iter(run_configs.values()))
    models = {k: {"model": c["model"].get("name"), "checkpoint": c.get("checkpoint"),
                  "checkpoint_sha256": c.get("checkpoint_sha256"), "kimg": c.get("kimg"),
                  "training_seconds": c.get("train_seconds")} for k, c in run_configs.items()}
    return {
        "kind": "medfab synthetic image set",
        "synthetic": True,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "medfab_version": __version__,
        "models": models,
        "model_config": first.get("model"),
        "training": first.get("training"),
        "training_seconds_total": sum(float(m["training_seconds"] or 0) for m in models.values()),
        "data": first.get("data"),
        "preprocess": first.get("preprocess"),
        "generated": {"mode": mode, "counts": generated, "base_seed": seed, "bit_depth": bit_depth,
                      "sampler": sampler or {}, "batch_size": batch_size, "device": device},
        "intended_use": INTENDED_USE,
        "must_not_be_used_for": NOT_FOR,
        "limitations": LIMITATIONS,
        "reproduce": "each image: medfab.sampling.generate_one(model, class_index, seed, **sampler), i.e. "
                     "model.generate([class], StackedRandomGenerator([seed]), **sampler); seed, sampler settings "
                     "and checkpoint sha256 are in manifest.csv; any batch size gives the same image",
    }
