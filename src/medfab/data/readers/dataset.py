"""Find the labelled samples under a path: folder-per-class (optionally inside split folders), a label
CSV, or a MedMNIST ``.npz``. Each file's format is told from its content (see :mod:`.sniff`).

Layouts understood::

    root/<class>/<files>                      e.g. Br35H: yes/, no/
    root/<split>/<class>/<files>              split in train | test | val (also training, validation, valid, testing)
    root/<any files, any depth> + labels.csv  columns file,label[,subject]; file relative to root
    data.npz                                  MedMNIST keys: train_images, train_labels, ...

Inside a class folder files may sit in sub-folders (e.g. one folder per DICOM series or per subject).
``Sample.subject`` comes from the CSV's ``subject`` column (kept as written: use pseudonyms there) or,
for DICOM, from a one-way hash of PatientID (see :mod:`.dicom`); otherwise it is None.
Nothing is decoded here except DICOM/NIfTI headers, so listing thousands of files is fast.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from medfab.data.readers.dicom import dicom_samples
from medfab.data.readers.nifti import volume_shape
from medfab.data.readers.npz import _natural, npz_samples
from medfab.data.readers.sniff import guess_by_name, is_hidden, sniff
from medfab.data.sample import Dataset, Sample
from medfab.errors import MedfabError

SPLIT_NAMES = {
    "train": "train", "training": "train", "test": "test", "testing": "test",
    "val": "val", "valid": "val", "validation": "val",
}
READERS = ("auto", "image", "nifti", "dicom", "npz")


def _abs(p: Path) -> Path:
    # absolute without following symlinks: a split made of symlinks keeps its own paths
    return Path(os.path.abspath(p))


def _check_options(reader: str, volume_mode: str, slice_axis: int, slice_range) -> None:
    if reader not in READERS:
        raise MedfabError(f"unknown reader {reader!r}", f"use one of {', '.join(READERS)}")
    if volume_mode not in ("3d", "2d"):
        raise MedfabError(f"volume_mode must be '3d' or '2d', not {volume_mode!r}", "use --volume-mode 3d or 2d")
    if slice_axis not in (0, 1, 2):
        raise MedfabError(f"slice_axis must be 0, 1 or 2, not {slice_axis}", "0 sagittal, 1 coronal, 2 axial")
    if slice_range is not None and (len(slice_range) != 2 or any(not isinstance(v, int) for v in slice_range)):
        raise MedfabError(f"slice_range must be two integers (start, stop), not {slice_range!r}", "e.g. (40, 100)")


def _data_files(folder: Path, problems: list[str], reader: str, root: Path) -> list[tuple[Path, str]]:
    """(file, kind) for every readable-looking file under ``folder`` (recursive, sorted, hidden skipped)."""
    found: list[tuple[Path, str]] = []
    seen: set[str] = set()
    # followlinks: a split made by `medfab data split` may link whole folders (e.g. DICOM series)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        d = Path(dirpath)
        real = os.path.realpath(d)
        if real in seen:  # a link loop, or a folder linked twice: read it once
            dirnames[:] = []
            continue
        seen.add(real)
        for name in sorted(dirnames):
            if is_hidden(Path(name)):
                problems.append(f"skipped hidden folder {(d / name).relative_to(root)}")
        dirnames[:] = sorted(n for n in dirnames if not is_hidden(Path(n)))
        for name in sorted(filenames):
            f = d / name
            rel = f.relative_to(root)
            if is_hidden(f):
                problems.append(f"skipped hidden file {rel}")
                continue
            kind = sniff(f) or guess_by_name(f)
            if kind is None or kind == "npz":
                problems.append(f"skipped {rel}: not an image, DICOM or NIfTI file")
            elif reader != "auto" and kind != reader:
                problems.append(f"skipped {rel}: a {kind} file, but reader={reader!r}")
            else:
                found.append((f, kind))
    return found


def _expand(
    files: list[tuple[Path, str]], label: str, split: str | None, subjects: dict[Path, str], *,
    volume_mode: str, slice_axis: int, slice_range,
) -> list[Sample]:
    """Turn files of one class into samples: images 1:1, NIfTI volume or slices, DICOM series grouping."""
    out: list[Sample] = []
    dicom_by_folder: dict[Path, list[Path]] = {}
    for f, kind in files:
        if kind == "image":
            out.append(Sample(f, label, split, subjects.get(f), None, None, "image"))
        elif kind == "nifti":
            shape = volume_shape(f)
            if len(shape) == 2 or volume_mode == "3d":
                out.append(Sample(f, label, split, subjects.get(f), None, None, "nifti"))
            else:
                idx = range(shape[slice_axis])
                idx = idx[slice(*slice_range)] if slice_range is not None else idx
                out.extend(Sample(f, label, split, subjects.get(f), i, slice_axis, "nifti") for i in idx)
        else:
            dicom_by_folder.setdefault(f.parent, []).append(f)
    for folder, dfiles in dicom_by_folder.items():
        samples = dicom_samples(folder, dfiles, label, split, volume_mode=volume_mode, slice_range=slice_range)
        out.extend(s if s.path not in subjects else Sample(s.path, s.label, s.split, subjects[s.path], s.index,
                                                               s.axis, s.reader) for s in samples)
    return out


def _read_csv(csv_path: Path, root: Path) -> tuple[dict[Path, str], dict[Path, str]]:
    if not csv_path.is_file():
        raise MedfabError(f"label file {csv_path} does not exist", "give a CSV with columns file,label[,subject]")
    labels: dict[Path, str] = {}
    subjects: dict[Path, str] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise MedfabError(f"{csv_path} needs a header with columns file,label[,subject]", "add the header line")
    for n, row in enumerate(rows, start=2):
        name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
        if not name or not label:
            raise MedfabError(f"{csv_path} line {n}: empty file or label", "fill in every row or delete it")
        p = Path(name) if Path(name).is_absolute() else root / name
        labels[_abs(p)] = label
        if (row.get("subject") or "").strip():
            subjects[_abs(p)] = row["subject"].strip()
    return labels, subjects


def _from_csv(root: Path, csv_path: Path, problems: list[str], reader: str, **opts) -> list[Sample]:
    labels, subjects = _read_csv(csv_path, root)
    missing = [str(p) for p in labels if not p.exists()]
    if missing:
        raise MedfabError(
            f"{len(missing)} file(s) named in {csv_path} do not exist, e.g. {missing[:3]}",
            "file paths in the CSV are relative to the data folder: fix them or remove those rows",
        )
    files = [(_abs(f), k) for f, k in _data_files(root, problems, reader, root) if _abs(f) != _abs(csv_path)]
    unlabelled = [str(f.relative_to(_abs(root))) for f, _ in files if f not in labels]
    if unlabelled:
        raise MedfabError(
            f"{len(unlabelled)} file(s) under {root} have no row in {csv_path}, e.g. {unlabelled[:3]}",
            "add a row (file,label) for each, or move them out of the data folder",
        )
    out: list[Sample] = []
    for label in sorted(set(labels.values())):
        sel = [(f, k) for f, k in files if labels[f] == label]
        out.extend(_expand(sel, label, None, subjects, **opts))
    return out


def _from_folders(root: Path, problems: list[str], reader: str, **opts) -> list[Sample]:
    entries = sorted(p for p in root.iterdir())
    dirs = [p for p in entries if p.is_dir() and not is_hidden(p)]
    for p in entries:
        if p.is_file():
            problems.append(f"skipped {p.name}: files at the top level have no class folder")
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_NAMES]
    if split_dirs:
        for d in dirs:
            if d not in split_dirs:
                problems.append(f"skipped folder {d.name}: not a split folder ({', '.join(sorted(SPLIT_NAMES))})")
        groups = [(SPLIT_NAMES[d.name.lower()], d) for d in split_dirs]
    else:
        groups = [(None, root)]
    if not any(p.is_dir() for _, g in groups for p in g.iterdir() if not is_hidden(p)):
        raise MedfabError(
            f"{root} has no class folders",
            "arrange images as ROOT/<class>/<image> (optionally ROOT/train/<class>/...), or pass labels_csv",
        )
    out: list[Sample] = []
    for split, group in groups:
        for cdir in sorted(p for p in group.iterdir() if p.is_dir() and not is_hidden(p)):
            files = _data_files(cdir, problems, reader, root)
            if not files:
                raise MedfabError(
                    f"class folder {cdir} holds no readable image, DICOM or NIfTI file",
                    "add images to it or remove the empty folder",
                )
            out.extend(_expand(files, cdir.name, split, {}, **opts))
        for p in sorted(group.iterdir()):
            if p.is_file() and split is not None:
                problems.append(f"skipped {p.relative_to(root)}: no class folder")
    return out


def read_dataset(
    path: str | Path,
    *,
    reader: str = "auto",
    labels_csv: str | Path | None = None,
    volume_mode: str = "3d",
    slice_axis: int = 2,
    slice_range: tuple[int, int] | None = None,
    min_classes: int = 1,
) -> Dataset:
    """List the labelled samples under ``path`` (no pixels are decoded).

    ``reader`` restricts the formats taken ("auto": all). ``volume_mode="2d"`` cuts NIfTI volumes into
    slices along ``slice_axis`` (after RAS reorientation; 2 = axial) and DICOM volumes into their stored
    slices, keeping ``range(n)[start:stop]`` for ``slice_range=(start, stop)``. ``min_classes``: raise if
    fewer classes are found (2 for anything that trains or evaluates a classifier).
    """
    _check_options(reader, volume_mode, slice_axis, slice_range)
    if slice_range is not None:
        slice_range = tuple(slice_range)
    root = _abs(Path(path).expanduser())
    if not root.exists():
        raise MedfabError(f"{root} does not exist", "give the folder that holds one sub-folder per class (or a .npz)")
    opts = {"volume_mode": volume_mode, "slice_axis": slice_axis, "slice_range": slice_range}
    problems: list[str] = []
    if root.is_file():
        if sniff(root) != "npz":
            raise MedfabError(
                f"{root} is a single file", "give a folder with one sub-folder per class, or a MedMNIST .npz file"
            )
        samples, classes = npz_samples(root)
    else:
        if labels_csv is not None:
            samples = _from_csv(root, Path(labels_csv).expanduser(), problems, reader, **opts)
        else:
            samples = _from_folders(root, problems, reader, **opts)
        classes = sorted({s.label for s in samples}, key=_natural)
    if not samples:
        raise MedfabError(f"no readable samples found under {root}", "check the layout (see `medfab data inspect`)")
    if len(classes) < min_classes:
        raise MedfabError(
            f"{root} has {len(classes)} class(es) ({', '.join(classes)}); this needs at least {min_classes}",
            "add a folder per class (e.g. ROOT/healthy/, ROOT/tumour/) or a labels CSV with 2+ labels",
        )
    return Dataset(root, samples, classes, problems)
