"""``manifest.csv``: one row per fabricated file, with what is needed to make it again."""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class ManifestRow:
    file: str                 # path relative to the output folder, e.g. "MildDemented/MildDemented_17.png"
    cls: str                  # written as column "class"
    model: str                # registry name of the model
    checkpoint_sha256: str    # of the safetensors file that made it
    seed: int                 # torch.Generator seed of this image alone
    sampler: str = "{}"       # the model's resolved sampler settings as compact JSON ("{}" for a GAN/VAE)
    seg: str = ""             # its segmentation file (runs trained with --with-seg), e.g. "t1/t1_3_seg.nii.gz"


COLUMNS = ["file", "class", "model", "checkpoint_sha256", "seed", "sampler"]


def settings_json(settings: dict) -> str:
    """The manifest's ``sampler`` cell: sorted, compact JSON."""
    import json

    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        with_seg = any(r.seg for r in rows)           # the "seg" column only for image + segmentation sets
        w.writerow(COLUMNS + ["seg"] * with_seg)
        for r in rows:
            w.writerow([getattr(r, k.name) for k in fields(ManifestRow) if with_seg or k.name != "seg"])


def read_manifest(path: Path) -> list[ManifestRow]:
    with open(path, newline="") as f:
        return [ManifestRow(r["file"], r["class"], r["model"], r["checkpoint_sha256"], int(r["seed"]),
                            r.get("sampler") or "{}",          # manifests written before the column: "{}"
                            r.get("seg") or "")
                for r in csv.DictReader(f)]
