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


COLUMNS = ["file", "class", "model", "checkpoint_sha256", "seed"]


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([getattr(r, k.name) for k in fields(ManifestRow)])


def read_manifest(path: Path) -> list[ManifestRow]:
    with open(path, newline="") as f:
        return [ManifestRow(r["file"], r["class"], r["model"], r["checkpoint_sha256"], int(r["seed"]))
                for r in csv.DictReader(f)]
