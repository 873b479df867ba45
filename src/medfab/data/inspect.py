"""``medfab data inspect``: what is in a labelled data set, and what in it will hurt training.

:func:`inspect_dataset` reads every sample once (:mod:`medfab.data.scan`) and returns a
:class:`InspectReport`: counts per class and split, image sizes and modes, unreadable and blank files,
exact and near duplicates (within a split and across splits, i.e. leakage), the class imbalance ratio, and
a list of problems, each with what to do. :func:`print_report` renders it as rich tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medfab.data import duplicates as dup
from medfab.data.scan import Scan, exact_groups, near_pairs, scan

TOP_SIZES = 5  # sizes listed by name; the rest are counted as "other"
MINORITY_SHARE = 1 / 3  # a class smaller than a third of the largest one is called out
FEW_IMAGES = 20  # per class and split: below this, per-class metrics are noise


@dataclass
class Problem:
    what: str
    todo: str


@dataclass
class InspectReport:
    root: str
    n_samples: int
    classes: list[str]
    splits: list[str]  # [] when the layout has no split folders
    counts: dict[str, dict[str, int]]  # split ("all" when none) -> class -> count
    sizes: list[tuple[str, int]]  # most common "HxW" first; TOP_SIZES of them
    other_sizes: int  # samples whose size is not among ``sizes``
    modes: dict[str, int]  # e.g. {"grey 8-bit": 6400}
    unreadable: list[tuple[str, str]]  # (key, reason)
    blank: list[str]
    skipped: list[str]  # files the reader passed over, with why
    exact_duplicates: list[list[str]]  # groups of keys with identical content
    # (key, key, distance, crosses splits), closest first; exact duplicates are left out
    near_duplicates: list[tuple[str, str, float, bool]]
    near_threshold: float
    cross_split_exact: int  # exact-duplicate pairs whose members sit in different splits
    cross_split_near: int
    label_conflicts: list[tuple[str, str]]  # exact or near duplicates filed under different classes
    subjects: int  # distinct subject ids (0: none known)
    cross_split_subjects: list[str]  # subject ids found in more than one split
    imbalance_ratio: float  # largest class / smallest class (training split if any)
    problems: list[Problem] = field(default_factory=list)
    flat_volumes: list[str] = field(default_factory=list)  # NIfTI files holding one 2D image
    # (group, balanced accuracy, chance): can the class be told from size/mode or intensity statistics alone?
    shortcuts: list[tuple[str, float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _counts(s: Scan) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (split, label), n in sorted(s.dataset.counts().items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        out.setdefault(split or "all", {})[label] = n
    return out


def _pct(n: int, total: int) -> str:
    return f"{100 * n / max(total, 1):.0f} %" if n * 100 >= total else f"{100 * n / max(total, 1):.1f} %"


def shortcut_margin() -> float:
    from medfab.data.shortcuts import MARGIN

    return MARGIN


def _problems(r: InspectReport) -> list[Problem]:
    p: list[Problem] = []
    if r.unreadable:
        p.append(
            Problem(
                f"{len(r.unreadable)} file(s) cannot be read, e.g. {r.unreadable[0][0]}",
                "replace or delete them before training (listed under unreadable files)",
            )
        )
    if r.blank:
        p.append(
            Problem(
                f"{len(r.blank)} image(s) are blank (one constant value), e.g. {r.blank[0]}",
                "delete them, or check the export (a window/level or bit-depth error); "
                "`medfab train` would train on them",
            )
        )
    if r.flat_volumes:
        p.append(
            Problem(
                f"{len(r.flat_volumes)} NIfTI file(s) hold a 2D image, not a volume, e.g. {r.flat_volumes[0]}",
                "keep 2D images and 3D volumes in separate data sets (a model is 2D or 3D); "
                "save slices as PNG, or stack them into one volume",
            )
        )
    for group, acc, chance in r.shortcuts:
        if acc < chance + shortcut_margin():
            continue
        what = ("image size, aspect ratio and storage mode" if group == "acquisition"
                else "simple intensity statistics (mean, spread, dark fraction)")
        todo = ("crop every image to the head's bounding box before resizing, so no padding is left to learn "
                "from: `medfab train --fit crop_head` and `medfab evaluate --fit crop_head` (PreprocessConfig "
                "fit='crop_head'); or re-export "
                "the classes alike; then inspect again"
                if group == "acquisition" else
                "check the classes were exported the same way (scanner, window/level, bit depth); "
                "if the difference is anatomy, this is expected")
        p.append(
            Problem(
                f"shortcut: {what} alone predict the class (balanced accuracy {acc:.2f}, chance {chance:.2f}, "
                "cross-validated); a model can learn the label from them instead of the anatomy",
                todo,
            )
        )
    if r.skipped:
        p.append(
            Problem(
                f"{len(r.skipped)} file(s) or folder(s) were skipped, e.g. {r.skipped[0]}",
                "move non-image files out of the class folders if they should not be there",
            )
        )
    if r.cross_split_exact:
        p.append(
            Problem(
                f"{r.cross_split_exact} exact-duplicate pair(s) cross splits (test images seen in training)",
                "re-split with `medfab data split` (duplicates are kept on one side)",
            )
        )
    n_exact = sum(len(g) - 1 for g in r.exact_duplicates)
    if n_exact:
        p.append(
            Problem(
                f"{n_exact} sample(s) are exact copies of another one",
                "delete the copies: they count those images twice in training and evaluation",
            )
        )
    if r.cross_split_near:
        p.append(
            Problem(
                f"{r.cross_split_near} near-duplicate pair(s) cross {'/'.join(r.splits)} "
                f"(thumbnail distance <= {r.near_threshold})",
                "re-split with `medfab data split` (near duplicates are grouped on one side)",
            )
        )
    if r.cross_split_subjects:
        p.append(
            Problem(
                f"{len(r.cross_split_subjects)} subject(s) appear in more than one split, "
                f"e.g. {r.cross_split_subjects[0]}",
                "re-split with `medfab data split` (it keeps each subject on one side)",
            )
        )
    if r.label_conflicts:
        a, b = r.label_conflicts[0]
        p.append(
            Problem(
                f"{len(r.label_conflicts)} duplicate pair(s) carry different labels, e.g. {a} vs {b}",
                "one of each pair is mislabelled or a copy slipped into the wrong class: fix or delete",
            )
        )
    within = len(r.near_duplicates) - r.cross_split_near
    if within:
        p.append(
            Problem(
                f"{within} near-duplicate pair(s) within a split (re-encoded copies or neighbouring slices)",
                "harmless for training; `medfab data split` keeps each group on one side",
            )
        )
    pool = r.counts.get("train") or {c: sum(v.get(c, 0) for v in r.counts.values()) for c in r.classes}
    total, biggest = sum(pool.values()), max(pool.values(), default=0)
    for c, n in sorted(pool.items(), key=lambda kv: kv[1]):
        if n < MINORITY_SHARE * biggest:
            p.append(
                Problem(
                    f"class {c} has {n} images ({_pct(n, total)}) vs {biggest} in the largest class",
                    "use class-weighted training or `medfab sample --balance-to` to fabricate more",
                )
            )
    for split, per in r.counts.items():
        for c in r.classes:
            n = per.get(c, 0)
            if n == 0 and split != "all":
                p.append(
                    Problem(
                        f"class {c} has no images in {split}",
                        "re-split with `medfab data split` so that every split holds every class",
                    )
                )
            elif n < FEW_IMAGES and split in ("test", "val"):
                p.append(
                    Problem(
                        f"{split} has only {n} image(s) of class {c}: per-class scores there are noisy",
                        "report confidence intervals, or re-split with a larger --test fraction",
                    )
                )
    if not r.splits:
        p.append(Problem("no train/test split folders", "make a leakage-free split with `medfab data split`"))
    leaks = any(g == "acquisition" and a >= c + shortcut_margin() for g, a, c in r.shortcuts)
    if (r.other_sizes or len(r.sizes) > 1) and not leaks:
        p.append(
            Problem(
                f"image sizes differ ({len(r.sizes)} common size(s), {r.other_sizes} other)",
                "fine when the size does not tell the class (checked: see shortcuts); medfab pads to a square "
                "and resizes to --size",
            )
        )
    if len(r.modes) > 1:
        p.append(
            Problem(
                f"image modes differ: {', '.join(f'{m} ({n})' for m, n in r.modes.items())}",
                "fine: medfab reads all as grey float (colour via luminance); check that is intended",
            )
        )
    elif any(m.startswith(("RGB", "palette", "CMYK")) for m in r.modes):
        p.append(
            Problem(
                f"images are stored as {next(iter(r.modes))}",
                "medfab converts them to grey (luminance); use grey exports if colour carries nothing",
            )
        )
    return p


def inspect_dataset(
    path: str | Path, *, progress: bool = True, max_rmse: float = dup.MAX_RMSE, **reader_options
) -> InspectReport:
    """Read every sample under ``path`` once and summarise it. ``reader_options`` go to ``read_dataset``."""
    import warnings

    from medfab.data.readers import read_dataset, relative_key

    errors: list = []  # every unusable file or folder is listed, not just the first
    with warnings.catch_warnings():  # skipped links are in the report's skipped list
        warnings.simplefilter("ignore")
        ds = read_dataset(path, errors=errors, **reader_options)
    s = scan(ds, progress=progress)
    listing_errors = []
    for f, e in errors:
        try:
            key = Path(f).relative_to(ds.root).as_posix()
        except ValueError:
            key = str(f)
        listing_errors.append((key, e.message))
    flat = [relative_key(smp, ds.root) for i, smp in enumerate(ds.samples)
            if smp.reader == "nifti" and smp.index is None and s.sizes[i] is not None and len(s.sizes[i]) == 2]
    ok = [i for i in range(len(ds.samples)) if s.sizes[i] is not None and len(s.sizes[i]) >= 2]
    from medfab.data.shortcuts import check_shortcuts

    shortcuts = check_shortcuts([s.sizes[i] for i in ok], [s.modes[i] for i in ok],
                                [s.thumbs.get(i) for i in ok], [ds.samples[i].label for i in ok])
    split = [smp.split for smp in ds.samples]
    label = [smp.label for smp in ds.samples]

    exact = exact_groups(s)
    cross_exact = sum(1 for g in exact for a in g for b in g if a < b and split[a] != split[b])
    pairs, dist = near_pairs(s, max_rmse=max_rmse)
    near = [
        (int(a), int(b), float(d)) for (a, b), d in zip(pairs, dist) if s.digests[a] != s.digests[b]
    ]  # exact copies are reported as such

    subject_splits: dict[str, set] = {}
    for smp in ds.samples:
        if smp.subject is not None:
            subject_splits.setdefault(smp.subject, set()).add(smp.split)
    sizes = Counter("x".join(map(str, sz)) for sz in s.sizes if sz is not None)
    top = sizes.most_common(TOP_SIZES)
    pool = _counts(s).get("train") or Counter(smp.label for smp in ds.samples)
    r = InspectReport(
        root=str(ds.root),
        n_samples=len(ds),
        classes=list(ds.classes),
        splits=ds.splits,
        counts=_counts(s),
        sizes=top,
        other_sizes=sum(sizes.values()) - sum(n for _, n in top),
        modes=dict(Counter(m for m in s.modes if m is not None).most_common()),
        unreadable=listing_errors + [(s.keys[i], why) for i, why in sorted(s.errors.items())],
        blank=[s.keys[i] for i in s.blank],
        skipped=list(ds.problems),
        exact_duplicates=[[s.keys[i] for i in g] for g in exact],
        near_duplicates=[(s.keys[a], s.keys[b], round(d, 5), split[a] != split[b]) for a, b, d in near],
        near_threshold=max_rmse,
        cross_split_exact=cross_exact,
        cross_split_near=sum(1 for a, b, _ in near if split[a] != split[b]),
        label_conflicts=[
            (s.keys[a], s.keys[b])
            for a, b in [(g[0], o) for g in exact for o in g[1:]] + [(a, b) for a, b, _ in near]
            if label[a] != label[b]
        ],
        subjects=len(subject_splits),
        cross_split_subjects=sorted(k for k, v in subject_splits.items() if len(v) > 1),
        imbalance_ratio=round(max(pool.values()) / max(min(pool.values()), 1), 2) if pool else 1.0,
        flat_volumes=flat,
        shortcuts=[(x.group, round(x.balanced_accuracy, 3), round(x.chance, 3)) for x in shortcuts],
    )
    r.problems = _problems(r)
    return r


def print_report(r: InspectReport, console, *, max_rows: int = 10) -> None:
    """Render the report as rich tables on ``console``."""
    from rich.table import Table

    console.print(
        f"[bold]{r.root}[/]: {r.n_samples} samples, {len(r.classes)} classes"
        f"{', splits ' + ', '.join(r.splits) if r.splits else ''}"
    )
    t = Table(title="samples per class")
    t.add_column("class")
    cols = list(r.counts)
    for c in cols:
        t.add_column(c, justify="right")
    t.add_column("total", justify="right")
    t.add_column("share", justify="right")
    for c in r.classes:
        n = sum(r.counts[s].get(c, 0) for s in cols)
        t.add_row(c, *(str(r.counts[s].get(c, 0)) for s in cols), str(n), _pct(n, r.n_samples))
    console.print(t)
    if r.subjects:
        console.print(f"subject ids known: {r.subjects} subjects")
    console.print(
        f"class imbalance ratio (largest / smallest{', train' if 'train' in r.counts else ''}): "
        f"[bold]{r.imbalance_ratio}[/]"
    )

    t = Table(title="image sizes and modes")
    t.add_column("size (H x W, or D x H x W)")
    t.add_column("count", justify="right")
    for sz, n in r.sizes:
        t.add_row(sz, str(n))
    if r.other_sizes:
        t.add_row("other sizes", str(r.other_sizes))
    for m, n in r.modes.items():
        t.add_row(f"mode: {m}", str(n))
    console.print(t)

    t = Table(
        title=f"duplicates (near: thumbnail distance <= {r.near_threshold}, see medfab.data.duplicates)"
    )
    for c in ("kind", "a", "b", "distance"):
        t.add_column(c)
    for g in r.exact_duplicates[:max_rows]:
        t.add_row("exact", g[0], ", ".join(g[1:]), "0")
    leaks_first = sorted(r.near_duplicates, key=lambda n: (not n[3], n[2]))
    for a, b, d, cross in leaks_first[:max_rows]:
        t.add_row("near, [red]cross-split[/]" if cross else "near", a, b, f"{d:.4f}")
    hidden = max(0, len(r.exact_duplicates) - max_rows) + max(0, len(r.near_duplicates) - max_rows)
    if hidden:
        t.caption = f"{hidden} more in --json"
    console.print(t if (r.exact_duplicates or r.near_duplicates) else "duplicates: none found")
    if r.unreadable:
        t = Table(title="unreadable files")
        t.add_column("file")
        t.add_column("reason")
        for k, why in r.unreadable[:max_rows]:
            t.add_row(k, why)
        if len(r.unreadable) > max_rows:
            t.caption = f"{len(r.unreadable) - max_rows} more in --json"
        console.print(t)
    if r.skipped:
        t = Table(title="skipped files, folders and links")
        t.add_column("what and why")
        for why in r.skipped[:max_rows]:
            t.add_row(why)
        if len(r.skipped) > max_rows:
            t.caption = f"{len(r.skipped) - max_rows} more in --json"
        console.print(t)

    t = Table(title="problems")
    t.add_column("problem")
    t.add_column("what to do")
    for p in r.problems:
        t.add_row(p.what, p.todo)
    console.print(t if r.problems else "[green]no problems found[/]")
