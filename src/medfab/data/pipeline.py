"""read_dataset -> preprocess -> cache -> TensorSet: the one path from a data folder to training tensors."""

from __future__ import annotations

import json
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


def _fill(x: np.ndarray, samples: list[Sample], cfg: PreprocessConfig, progress: bool, check_8bit: bool) -> None:
    """Decode and preprocess every sample into ``x`` (N, 1, *spatial), row by row.

    ``check_8bit``: ``cfg`` was resolved assuming 8-bit images; raise _NotEightBit on the first that is not.
    Bad files do not stop the pass, so that one error can list all of them.
    """
    rows = samples
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(samples, desc=f"decoding {len(samples)} samples", unit="img", leave=False)
    failed: list[MedfabError] = []
    for i, s in enumerate(rows):
        try:
            a, mode = load_array_with_mode(s)
            if check_8bit and mode not in EIGHT_BIT_MODES:
                raise _NotEightBit
            x[i, 0] = preprocess_array(a, cfg, name=str(s.path))
        except MedfabError as e:
            failed.append(e)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        listing = "\n".join(f"  {e.message}" for e in failed[:10])
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise MedfabError(f"{len(failed)} files could not be loaded:\n{listing}{more}", failed[0].hint)


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
) -> TensorSet:
    """Preprocessed tensors for an already listed :class:`Dataset` (cached)."""
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
        return TensorSet(x, y, list(ds.classes), keys, preprocess=meta["preprocess"])

    # "auto" normalisation depends on whether all inputs are 8-bit: assume what the first sample says,
    # and start over in the rare mixed data set where a later sample says otherwise.
    guess = first_mode in EIGHT_BIT_MODES
    resolved = cfg if cfg.resolved else cfg.resolve(eight_bit=guess)
    shape = (len(ds.samples), 1) + (resolved.size,) * resolved.spatial_dims
    writer = EntryWriter(root, key, shape) if root is not None else None
    x = writer.x if writer is not None else np.empty(shape, dtype=np.float32)
    try:
        # Small matrix products: OpenBLAS threads only spin against each other (20x slower on a busy machine).
        with threadpool_limits(1, user_api="blas"):
            try:
                _fill(x, ds.samples, resolved, progress, check_8bit=not cfg.resolved and guess)
            except _NotEightBit:
                resolved = cfg.resolve(eight_bit=False)
                _fill(x, ds.samples, resolved, progress, check_8bit=False)
        if writer is not None:
            meta = {"preprocess": resolved.model_dump(mode="json"), "classes": ds.classes, "keys": keys,
                    "y": y.tolist(), "root": str(ds.root)}
            x = writer.commit(meta)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
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
    return dataset_tensors(ds, size=size, cache_dir=cache_dir, preprocess=preprocess, progress=progress)
