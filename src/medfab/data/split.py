"""``medfab data split``: a leakage-free train/val/test split of a labelled data set.

Samples are first joined into groups that must not be separated: the same subject (``Sample.subject``),
slices of the same volume file, exact duplicates and near duplicates (:mod:`medfab.data.duplicates`,
linked through chains). Whole groups are then assigned with scikit-learn's ``StratifiedGroupKFold``, which
keeps the class proportions of every split close to the whole set's. The result is written as
``OUT/{train,val,test}/<class>/<file>`` (symlinks, or copies) plus ``OUT/split.csv`` and ``OUT/split.json``,
built in a hidden sibling folder and renamed into place, so a killed run never leaves a half-written OUT.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medfab.data import duplicates as dup
from medfab.data.scan import Scan, exact_groups, near_pairs, scan
from medfab.errors import MedfabError

SPLITS = ("train", "val", "test")


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test: float = Field(0.2, ge=0.0, lt=1.0)  # fraction of samples in test
    val: float = Field(0.1, ge=0.0, lt=1.0)  # fraction of samples in val
    seed: int = 0  # the only random draw: the shuffle of groups into folds
    link: Literal["symlink", "copy"] = (
        "symlink"  # symlinks (absolute) save space; copies survive moving the data
    )
    near_rmse: float = Field(dup.MAX_RMSE, ge=0.0)  # near-duplicate threshold (see medfab.data.duplicates)

    @model_validator(mode="after")
    def _fractions(self):
        if self.test + self.val >= 0.95:
            raise ValueError(f"test + val = {self.test + self.val:.2f} leaves (almost) nothing to train on")
        return self


def sample_groups(s: Scan, *, near_rmse: float = dup.MAX_RMSE) -> np.ndarray:
    """(N,) int group id: samples that must stay on one side of a split share an id.

    Links: same subject id, same file (slices of one volume), identical content, near-duplicate pairs.
    Unreadable samples keep their own group (they are still placed, so nothing silently disappears).
    """
    samples = s.dataset.samples
    n = len(samples)
    links: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
    by_key: dict[tuple, list[int]] = {}
    for i, smp in enumerate(samples):
        if smp.subject is not None:
            by_key.setdefault(("subject", smp.subject), []).append(i)
        if smp.index is not None and smp.reader != "npz":
            by_key.setdefault(("file", str(smp.path)), []).append(i)
    for members in list(by_key.values()) + exact_groups(s):
        m = np.asarray(members, np.int64)
        links.append(np.stack([np.full(len(m) - 1, m[0]), m[1:]], axis=1))  # a star joins them all
    links.append(near_pairs(s, max_rmse=near_rmse)[0])
    labels = dup.group_labels(n, np.concatenate(links))
    _, first = np.unique(labels, return_index=True)
    renumber = {int(labels[f]): k for k, f in enumerate(np.sort(first))}  # ids in order of first sample
    return np.array([renumber[int(g)] for g in labels], dtype=np.int64)


def _take_fraction(y: np.ndarray, groups: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """(N,) bool: a group-respecting, class-stratified subset of about ``frac`` of the samples."""
    from sklearn.model_selection import StratifiedGroupKFold

    if frac <= 0:
        return np.zeros(len(y), bool)
    small = min(frac, 1 - frac)
    k = max(2, round(1 / small))  # StratifiedGroupKFold makes k equal folds: one fold is about 1/k
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise MedfabError(
            f"only {n_groups} independent group(s) (subjects, near-duplicate clusters) for {k} parts",
            "add data, lower --test/--val, or check subject ids (all samples of a subject form one group)",
        )
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": reported later
        warnings.simplefilter("ignore", UserWarning)
        folds = [test for _, test in sgkf.split(np.zeros(len(y)), y, groups)]
    target = small * len(y)
    best = min(range(k), key=lambda f: (abs(len(folds[f]) - target), f))  # the fold nearest the wanted size
    mask = np.zeros(len(y), bool)
    mask[folds[best]] = True
    return mask if frac <= 0.5 else ~mask


def assign_splits(y: np.ndarray, groups: np.ndarray, *, test: float, val: float, seed: int) -> np.ndarray:
    """(N,) array of "train" / "val" / "test": whole groups per split, stratified by class ``y``."""
    y, groups = np.asarray(y), np.asarray(groups)
    out = np.full(len(y), "train", dtype=object)
    is_test = _take_fraction(y, groups, test, seed)
    out[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    if val > 0 and len(rest):
        is_val = _take_fraction(y[rest], groups[rest], val / (1 - test), seed + 1)
        out[rest[is_val]] = "val"
    return out


def _check_out(out: Path, data_root: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedfabError(
            f"{out} already exists and is not empty", "give a new folder for --out, or delete this one"
        )
    if out.resolve().is_relative_to(data_root.resolve()):
        raise MedfabError(
            f"--out {out} lies inside the data folder {data_root}",
            "write the split next to the data, e.g. --out ../mydata-split",
        )


def _clean_stale(out: Path) -> None:
    """Remove hidden partial folders left by killed runs (whose process no longer exists)."""
    for p in out.parent.glob(f".{out.name}.partial-*"):
        try:
            os.kill(int(p.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


def _write(tmp: Path, s: Scan, where: np.ndarray, groups: np.ndarray, copy: bool) -> list[dict]:
    """Link or copy each file once into ``tmp/<split>/<class>/``; returns the split.csv rows."""
    rows, placed, used = [], {}, set()
    for i, smp in enumerate(s.dataset.samples):
        src = Path(smp.path).resolve()
        if src not in placed:
            name = src.name
            if (where[i], smp.label, name) in used:  # same file name from two source folders
                name = "__".join(Path(s.keys[i].split("#")[0]).parts)
            used.add((where[i], smp.label, name))
            dest = tmp / where[i] / smp.label / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not copy:
                os.symlink(src, dest, target_is_directory=src.is_dir())
            elif src.is_dir():
                shutil.copytree(src, dest)
            else:
                shutil.copy2(src, dest)
            placed[src] = dest.relative_to(tmp).as_posix()
        rows.append(
            {
                "file": placed[src],
                "source": s.keys[i],
                "class": smp.label,
                "split": where[i],
                "group": int(groups[i]),
            }
        )
    return rows


def split_dataset(
    path: str | Path,
    out: str | Path,
    config: SplitConfig | None = None,
    *,
    progress: bool = True,
    **reader_options,
) -> dict:
    """Split the data set under ``path`` into ``out``; returns the summary (also saved as split.json)."""
    from medfab.data.readers import read_dataset

    config = config or SplitConfig()
    out = Path(out).expanduser()
    ds = read_dataset(path, **reader_options)
    if any(smp.reader == "npz" for smp in ds.samples):
        raise MedfabError(
            "an .npz file cannot be re-split into folders", "split the folder of images it came from"
        )
    _check_out(out, ds.root)
    s = scan(ds, progress=progress)
    groups = sample_groups(s, near_rmse=config.near_rmse)
    # slices of one volume form one group, so a group's files never straddle splits
    where = assign_splits(np.array(ds.labels()), groups, test=config.test, val=config.val, seed=config.seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        rows = _write(tmp, s, where, groups, config.link == "copy")
        with open(tmp / "split.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["file", "source", "class", "split", "group"])
            w.writeheader()
            w.writerows(rows)
        counts = {
            sp: {
                c: int(((where == sp) & (np.array(ds.labels()) == k)).sum()) for k, c in enumerate(ds.classes)
            }
            for sp in SPLITS
            if (where == sp).any()
        }
        summary = {
            "source": str(ds.root.resolve()),
            "config": config.model_dump(),
            "counts": counts,
            "groups": int(groups.max() + 1) if len(groups) else 0,
            "grouped_samples": int((np.bincount(groups)[groups] > 1).sum()) if len(groups) else 0,
            "largest_group": int(np.bincount(groups).max()) if len(groups) else 0,
            "unreadable": [s.keys[i] for i in sorted(s.errors)],
        }
        (tmp / "split.json").write_text(json.dumps(summary, indent=2))
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace it on every platform
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
