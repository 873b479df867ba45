"""read_dataset -> preprocess -> cache -> TensorSet: the one path from a data folder to training tensors."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from medfab.data.cache import EntryWriter, FileHasher, cache_key, cache_root, load_entry
from medfab.data.preprocess import PreprocessConfig
from medfab.data.preprocess import preprocess as preprocess_array
from medfab.data.readers import load_array_with_mode, read_dataset, relative_key
from medfab.data.readers.dicom import series_files
from medfab.data.readers.images import EIGHT_BIT_MODES
from medfab.data.sample import Dataset, Sample
from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError


class _NotEightBit(Exception):
    """Raised inside a pass that assumed 8-bit input when a sample turns out otherwise."""


def _files_of(sample: Sample) -> list[Path]:
    p = Path(sample.path)
    return series_files(p) if p.is_dir() else [p]


def _probe(samples: list[Sample]) -> tuple[np.ndarray, str | None]:
    """The first sample that decodes (2D or 3D? 8-bit?); bad files are all reported later by _fill."""
    for s in samples[:50]:
        try:
            return load_array_with_mode(s)
        except MedfabError:
            continue
    return load_array_with_mode(samples[0])  # 50 bad files in a row: report the first one now


def _choose_config(size: int, preprocess: PreprocessConfig | dict | None, first: np.ndarray) -> PreprocessConfig:
    if preprocess is None:
        return PreprocessConfig(size=size, spatial_dims=3 if first.ndim == 3 else 2)
    if not isinstance(preprocess, PreprocessConfig):
        preprocess = PreprocessConfig.model_validate(preprocess)
    if size not in (64, preprocess.size):  # 64 is the argument's default: then the config's size wins
        raise MedfabError(
            f"size={size} disagrees with preprocess.size={preprocess.size}", "give the size in one place only"
        )
    return preprocess


def _rows(
    x: np.ndarray | str, items: list[tuple[int, Sample]], cfg_json: str, check_8bit: bool
) -> tuple[int, list[tuple[str, str | None]], bool]:
    """Decode and preprocess ``items`` into rows of ``x`` (N, 1, *spatial), or of the .npy file at path ``x``.

    Runs in-process or in a worker process. Returns (rows done, [(message, hint)] of bad files, not_8bit):
    bad files do not stop the pass, so that one error can list all of them; ``check_8bit`` means the
    config was resolved assuming 8-bit images, and the pass stops at the first sample that is not.
    """
    arr = np.load(x, mmap_mode="r+") if isinstance(x, str) else x
    cfg = PreprocessConfig.model_validate_json(cfg_json)
    errors: list[tuple[str, str | None]] = []
    # Small matrix products: OpenBLAS threads only spin against each other (20x slower on a busy machine).
    with threadpool_limits(1, user_api="blas"):
        for i, s in items:
            try:
                a, mode = load_array_with_mode(s)
                if check_8bit and mode not in EIGHT_BIT_MODES:
                    return len(items), errors, True
                arr[i, 0] = preprocess_array(a, cfg, name=str(s.path))
            except MedfabError as e:
                errors.append((e.message, e.hint))
    if isinstance(arr, np.memmap):
        arr.flush()
    return len(items), errors, False


def _workers(requested: int | None, n: int, file_backed: bool) -> int:
    if requested is not None:
        return max(1, requested)
    if not file_backed or n < 2000:  # process start-up (~1 s each) does not pay for small sets
        return 1
    return max(1, min(8, os.cpu_count() or 1))


def _fill(
    x: np.ndarray, x_path: Path | None, samples: list[Sample], cfg: PreprocessConfig, *, progress: bool,
    check_8bit: bool, workers: int,
) -> None:
    """Fill ``x`` with every sample, in chunks, in ``workers`` processes when ``x`` is backed by ``x_path``."""
    items = list(enumerate(samples))
    chunks = [items[k : k + 128] for k in range(0, len(items), 128)]
    cfg_json = cfg.model_dump_json()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=f"decoding {len(items)} samples", unit="img", leave=False)
    errors: list[tuple[str, str | None]] = []
    not_8bit = False
    try:
        if workers > 1 and x_path is not None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: forking a process that holds torch/OpenMP threads can deadlock
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_rows, str(x_path), c, cfg_json, check_8bit) for c in chunks]
                results = (f.result() for f in futures)
                for done, errs, stop in results:
                    errors += errs
                    not_8bit |= stop
                    if bar is not None:
                        bar.update(done)
        else:
            for c in chunks:
                done, errs, stop = _rows(x, c, cfg_json, check_8bit)
                errors += errs
                if bar is not None:
                    bar.update(done)
                if stop:
                    not_8bit = True
                    break
    finally:
        if bar is not None:
            bar.close()
    if not_8bit:
        raise _NotEightBit
    if len(errors) == 1:
        raise MedfabError(*errors[0])
    if errors:
        listing = "\n".join(f"  {m}" for m, _ in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise MedfabError(f"{len(errors)} files could not be loaded:\n{listing}{more}", errors[0][1])


def _writer(root: Path | None, key: str, shape: tuple[int, ...]) -> EntryWriter | None:
    """A cache entry writer, or None (work in memory) when caching is off or the cache folder is unusable."""
    if root is None:
        return None
    try:
        return EntryWriter(root, key, shape)
    except OSError as e:  # read-only home, full disk: caching is an optimisation, not a requirement
        warnings.warn(f"not caching tensors in {root} ({e}); set MEDFAB_CACHE to a writable folder", stacklevel=3)
        return None


def _warn_blank(x: np.ndarray, keys: list[str]) -> None:
    """Say so when images are blank (one value: all black, one pixel): they are used, but teach nothing."""
    flat = np.asarray(x).reshape(len(x), -1)
    blank = np.flatnonzero(flat.max(axis=1) <= flat.min(axis=1)) if flat.size else np.zeros(0, np.int64)
    if len(blank):
        warnings.warn(f"{len(blank)} of {len(x)} image(s) are blank (one constant value), e.g. {keys[blank[0]]}; "
                      "they are used as they are: delete them if that is not intended (see `medfab data inspect`)",
                      stacklevel=3)


def _key(ds: Dataset, keys: list[str], cfg: PreprocessConfig, root: Path | None) -> str:
    """Cache key: config as given + every sample's key, label and file content hash."""
    hasher = FileHasher(root)
    digests: dict[Path, str] = {}
    parts = [cfg.model_dump_json(), json.dumps(ds.classes)]
    for s, k in zip(ds.samples, keys):
        if s.path not in digests:
            digests[s.path] = ",".join(hasher(f) for f in _files_of(s))
        parts.append(f"{k}\t{s.label}\t{digests[s.path]}")
    hasher.save()
    return cache_key(parts)


def dataset_tensors(
    ds: Dataset,
    *,
    size: int = 64,
    cache_dir: str | Path | None = None,
    preprocess: PreprocessConfig | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> TensorSet:
    """Preprocessed tensors for an already listed :class:`Dataset` (cached).

    ``workers``: decoding processes on a cache miss (None: up to 8 for 2,000+ samples when caching is on,
    else 1). Rows are independent, so the result does not depend on it.
    """
    if not ds.samples:
        raise MedfabError(f"no samples to load under {ds.root}", "check the split name and the folder layout")
    keys = [relative_key(s, ds.root) for s in ds.samples]
    index = {c: i for i, c in enumerate(ds.classes)}
    y = np.array([index[s.label] for s in ds.samples], dtype=np.int64)
    first, first_mode = _probe(ds.samples)
    cfg = _choose_config(size, preprocess, first)
    root = cache_root(cache_dir)
    key = _key(ds, keys, cfg, root)

    hit = load_entry(root, key)
    if hit is not None:
        x, meta = hit
        _warn_blank(x, keys)
        return TensorSet(x, y, list(ds.classes), keys, preprocess=meta["preprocess"])

    # "auto" normalisation depends on whether all inputs are 8-bit: assume what the first sample says,
    # and start over in the rare mixed data set where a later sample says otherwise.
    guess = first_mode in EIGHT_BIT_MODES
    resolved = cfg if cfg.resolved else cfg.resolve(eight_bit=guess)
    shape = (len(ds.samples), 1) + (resolved.size,) * resolved.spatial_dims
    writer = _writer(root, key, shape)
    x = writer.x if writer is not None else np.empty(shape, dtype=np.float32)
    x_path = writer.tmp / "x.npy" if writer is not None else None
    n_workers = _workers(workers, len(ds.samples), x_path is not None)
    try:
        try:
            _fill(x, x_path, ds.samples, resolved, progress=progress, check_8bit=not cfg.resolved and guess,
                  workers=n_workers)
        except _NotEightBit:
            resolved = cfg.resolve(eight_bit=False)
            _fill(x, x_path, ds.samples, resolved, progress=progress, check_8bit=False, workers=n_workers)
        if writer is not None:
            meta = {"preprocess": resolved.model_dump(mode="json"), "classes": ds.classes, "keys": keys,
                    "y": y.tolist(), "root": str(ds.root)}
            x = writer.commit(meta)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    _warn_blank(x, keys)
    return TensorSet(x, y, list(ds.classes), keys, preprocess=resolved.model_dump(mode="json"))


def load_tensors(
    path,
    *,
    size: int = 64,
    split: str | None = None,
    cache_dir=None,
    preprocess: PreprocessConfig | None = None,
    progress: bool = True,
    reader: str = "auto",
    labels_csv=None,
    volume_mode: str = "3d",
    slice_axis: int = 2,
    slice_range: tuple[int, int] | None = None,
    workers: int | None = None,
) -> TensorSet:
    """See :func:`medfab.data.tensors.load_tensors`."""
    ds = read_dataset(path, reader=reader, labels_csv=labels_csv, volume_mode=volume_mode,
                      slice_axis=slice_axis, slice_range=slice_range)
    if split is not None:
        if split not in ds.splits:
            raise MedfabError(
                f"{path} has no split {split!r} (splits: {ds.splits or 'none'})",
                "leave split unset to use every image, or arrange ROOT/<split>/<class>/ folders",
            )
        ds = ds.subset(split)
    return dataset_tensors(ds, size=size, cache_dir=cache_dir, preprocess=preprocess, progress=progress,
                           workers=workers)
