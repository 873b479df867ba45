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
import warnings
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


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _link_problem(link: Path, target: str, d: Path, root: Path, is_dir: bool,
                  own_class: str | None = None, class_dirs: frozenset[str] = frozenset()) -> str | None:
    """Why a symbolic link must not be followed (None: follow it).

    A link back to the folder holding it or to any folder above it is a loop (it would count the other
    classes' images again, under this class). A link into another class folder (``class_dirs``: real paths,
    ``own_class``: this one's) would count that class's files under this one. A folder link leaving the data
    root is followed only when it is a leaf folder of files (``medfab data split`` links DICOM series so);
    a file link may point anywhere else (split's symlinks do), and reading it cannot loop.
    """
    rel = link.relative_to(root)
    if is_dir and _inside(os.path.realpath(d), target):
        return f"skipped link {rel} -> {target}: it points back to a folder above it (a loop)"
    other = next((c for c in class_dirs if c != own_class and _inside(target, c)), None)
    if other is not None and not (own_class and _inside(target, own_class)):
        return (f"skipped link {rel} -> {target}: it points into another class folder "
                "(a file is never counted under two classes)")
    if is_dir and not _inside(target, os.path.realpath(root)):
        try:
            leaf = not any(e.is_dir() for e in os.scandir(target))
        except OSError:
            leaf = False
        if not leaf:
            return f"skipped link {rel} -> {target}: it leads out of the data folder"
    return None


def _data_files(folder: Path, problems: list[str], reader: str, root: Path,
                owners: dict[str, str] | None = None, label: str | None = None,
                class_dirs: frozenset[str] = frozenset()) -> list[tuple[Path, str]]:
    """(file, kind) for every readable-looking file under ``folder`` (recursive, sorted, hidden skipped).

    Symbolic links are resolved: loops and folder links out of the data root are skipped with a problem
    (see :func:`_link_problem`), a broken link too. ``owners`` maps each real file path already taken to its
    class, so one file (reached through links) is never counted under two classes.
    """
    found: list[tuple[Path, str]] = []
    seen: set[str] = set()
    owners = {} if owners is None else owners
    own = os.path.realpath(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        d = Path(dirpath)
        real = os.path.realpath(d)
        if real in seen:  # a folder linked twice: read it once
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for name in sorted(dirnames):
            if is_hidden(Path(name)):
                problems.append(f"skipped hidden folder {(d / name).relative_to(root)}")
                continue
            if os.path.islink(d / name):
                why = _link_problem(d / name, os.path.realpath(d / name), d, root, True, own, class_dirs)
                if why:
                    problems.append(why)
                    warnings.warn(why, stacklevel=2)
                    continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            f = d / name
            rel = f.relative_to(root)
            if is_hidden(f):
                problems.append(f"skipped hidden file {rel}")
                continue
            if os.path.islink(f):
                why = (f"skipped {rel}: a broken link (its target does not exist)" if not f.exists() else
                       _link_problem(f, os.path.realpath(f), d, root, False, own, class_dirs))
                if why:
                    problems.append(why)
                    warnings.warn(why, stacklevel=2)
                    continue
            kind = sniff(f) or guess_by_name(f)
            if kind is None or kind == "npz":
                problems.append(f"skipped {rel}: not an image, DICOM or NIfTI file")
            elif reader != "auto" and kind != reader:
                problems.append(f"skipped {rel}: a {kind} file, but reader={reader!r}")
            else:
                target = os.path.realpath(f)
                if label is not None and owners.setdefault(target, label) != label:
                    why = (f"skipped {rel}: the same file is already counted under class {owners[target]!r} "
                           "(a file is never counted under two classes)")
                    problems.append(why)
                    warnings.warn(why, stacklevel=2)
                    continue
                found.append((f, kind))
    return found


def _expand(
    files: list[tuple[Path, str]], label: str, split: str | None, subjects: dict[Path, str], *,
    volume_mode: str, slice_axis: int, slice_range, errors: list[tuple[Path, MedfabError]] | None = None,
) -> list[Sample]:
    """Turn files of one class into samples: images 1:1, NIfTI volume or slices, DICOM series grouping.

    ``errors``: when given, a file whose header cannot be used (a 4D or broken NIfTI, a non-DICOM file in a
    series) is recorded there as (path, error) and left out, so that an inspection lists every one of them.
    """
    out: list[Sample] = []
    dicom_by_folder: dict[Path, list[Path]] = {}
    for f, kind in files:
        if kind == "image":
            out.append(Sample(f, label, split, subjects.get(f), None, None, "image"))
        elif kind == "nifti":
            try:
                shape = volume_shape(f)
            except MedfabError as e:
                if errors is None:
                    raise
                errors.append((f, e))
                continue
            if len(shape) == 2 or volume_mode == "3d":
                out.append(Sample(f, label, split, subjects.get(f), None, None, "nifti"))
            else:
                idx = range(shape[slice_axis])
                idx = idx[slice(*slice_range)] if slice_range is not None else idx
                out.extend(Sample(f, label, split, subjects.get(f), i, slice_axis, "nifti") for i in idx)
        else:
            dicom_by_folder.setdefault(f.parent, []).append(f)
    for folder, dfiles in dicom_by_folder.items():
        try:
            samples = dicom_samples(folder, dfiles, label, split, volume_mode=volume_mode, slice_range=slice_range,
                                    errors=errors)
        except MedfabError as e:
            if errors is None:
                raise
            errors.append((folder, e))
            continue
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
    owners: dict[str, str] = {}  # real file path -> class: one file is never counted under two classes
    errors = opts.get("errors")
    class_dirs = frozenset(os.path.realpath(c) for _, g in groups for c in g.iterdir()
                           if c.is_dir() and not is_hidden(c) and not c.is_symlink())
    for split, group in groups:
        for cdir in sorted(p for p in group.iterdir() if p.is_dir() and not is_hidden(p)):
            if cdir.is_symlink():
                why = _link_problem(cdir, os.path.realpath(cdir), group, root, True, None, class_dirs)
                if why:
                    problems.append(why)
                    warnings.warn(why, stacklevel=2)
                    continue
            files = _data_files(cdir, problems, reader, root, owners, cdir.name, class_dirs)
            if not files:
                e = MedfabError(
                    f"class folder {cdir} holds no readable image, DICOM or NIfTI file",
                    "add images to it or remove the empty folder",
                )
                if errors is None:
                    raise e
                errors.append((cdir, e))
                continue
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
    errors: list[tuple[Path, MedfabError]] | None = None,
) -> Dataset:
    """List the labelled samples under ``path`` (no pixels are decoded).

    ``reader`` restricts the formats taken ("auto": all). ``volume_mode="2d"`` cuts NIfTI volumes into
    slices along ``slice_axis`` (after RAS reorientation; 2 = axial) and DICOM volumes into their stored
    slices, keeping ``range(n)[start:stop]`` for ``slice_range=(start, stop)``. ``min_classes``: raise if
    fewer classes are found (2 for anything that trains or evaluates a classifier). ``errors``: collect
    (path, error) for empty class folders and unusable NIfTI/DICOM headers instead of raising at the first
    one (``medfab data inspect`` lists them all); without it the first one raises.
    """
    _check_options(reader, volume_mode, slice_axis, slice_range)
    if slice_range is not None:
        slice_range = tuple(slice_range)
    root = _abs(Path(path).expanduser())
    if not root.exists():
        raise MedfabError(f"{root} does not exist", "give the folder that holds one sub-folder per class (or a .npz)")
    opts = {"volume_mode": volume_mode, "slice_axis": slice_axis, "slice_range": slice_range, "errors": errors}
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
    if not samples and errors:
        raise MedfabError(f"no readable samples found under {root}: {errors[0][1].message}"
                          + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""),
                          errors[0][1].hint)
    if not samples:
        raise MedfabError(f"no readable samples found under {root}", "check the layout (see `medfab data inspect`)")
    if len(classes) < min_classes:
        raise MedfabError(
            f"{root} has {len(classes)} class(es) ({', '.join(classes)}); this needs at least {min_classes}",
            "add a folder per class (e.g. ROOT/healthy/, ROOT/tumour/) or a labels CSV with 2+ labels",
        )
    return Dataset(root, samples, classes, problems)
