"""On-disk cache of preprocessed tensors, memory-mapped on reading.

An entry is a folder ``<cache>/tensors/<key>/`` with ``x.npy`` (N, 1, *spatial) float32 and ``meta.json``
(classes, labels, keys, the resolved preprocessing). ``key`` is the SHA-256 of the cache format version,
the preprocessing config as given, and every sample's key, label and file content hash: a changed,
added or removed file, or another config, gives another key. Entries are built in a ``.tmp-*`` folder
and renamed into place in one step, so a run killed half-way leaves no entry that looks complete.

File content hashes are SHA-256 of the bytes (not of decoded pixels). A side index maps
(path, size, mtime) -> hash, so a repeated run only ``stat``s the files instead of reading them. Only files
unchanged for ``SETTLED_S`` seconds enter the index: a file rewritten within its timestamp's granularity (a
jiffy on many file systems) keeps its size and mtime, and would otherwise keep its old hash -- and hand back the
old tensors (the "racily clean" problem git solves the same way).

Location: ``cache_dir`` argument, else ``$MEDFAB_CACHE``, else ``~/.cache/medfab``.
``MEDFAB_CACHE=off`` turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE_VERSION = 1  # bump when preprocessing code changes what it produces for the same config
_INDEX = "file_hashes.json"
SETTLED_S = 2.0  # a file younger than this is hashed every time, never remembered


def cache_root(cache_dir: str | Path | None = None) -> Path | None:
    """The cache folder, or None when caching is off (``MEDFAB_CACHE=off``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MEDFAB_CACHE")
    if env is not None and env.strip().lower() in ("off", "0", "none", ""):
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medfab"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileHasher:
    """Content hashes with a (path, size, mtime_ns) side index stored in the cache folder."""

    def __init__(self, root: Path | None):
        self.path = None if root is None else root / _INDEX
        self.index: dict[str, list] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                self.index = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.index = {}  # a damaged index only costs re-hashing

    def __call__(self, path: Path) -> str:
        st = path.stat()
        k = os.path.abspath(path)
        hit = self.index.get(k)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = _sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > SETTLED_S * 1e9:  # settled: a later change gets another mtime
            self.index[k] = [st.st_size, st.st_mtime_ns, digest]
            self.dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.dirty:
            try:
                _atomic_write_text(self.path, json.dumps(self.index))
            except OSError:
                pass  # an unwritable cache only costs re-hashing next time (the tensors say why, once)
            self.dirty = False


def cache_key(parts: list[str]) -> str:
    h = hashlib.sha256(f"medfab-cache-v{CACHE_VERSION}\n".encode())
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:32]


def load_entry(root: Path | None, key: str) -> tuple[np.ndarray, dict] | None:
    """(x memory-mapped copy-on-write, meta) or None on a miss."""
    if root is None:
        return None
    entry = root / "tensors" / key
    try:
        meta = json.loads((entry / "meta.json").read_text())
        x = np.load(entry / "x.npy", mmap_mode="c")  # writes stay in memory, never reach the file
    except (OSError, ValueError):
        return None
    if x.shape[0] != len(meta.get("keys", [])):
        return None
    return x, meta


class EntryWriter:
    """Write ``x`` row by row into a temporary folder, then :meth:`commit` renames it into place."""

    def __init__(self, root: Path, key: str, shape: tuple[int, ...]):
        self.final = root / "tensors" / key
        self.final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(self.final.parent)
        self.tmp = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".tmp-{key}-"))
        self.x = np.lib.format.open_memmap(self.tmp / "x.npy", mode="w+", dtype=np.float32, shape=shape)

    def commit(self, meta: dict) -> np.ndarray:
        self.x.flush()
        del self.x
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(self.tmp, self.final)
        except OSError:  # another run committed the same entry first: theirs is identical
            shutil.rmtree(self.tmp, ignore_errors=True)
        return np.load(self.final / "x.npy", mmap_mode="c")

    def abort(self) -> None:
        if hasattr(self, "x"):
            del self.x
        shutil.rmtree(self.tmp, ignore_errors=True)


def _remove_stale(folder: Path, max_age_s: float = 6 * 3600) -> None:
    """Delete temporary folders of runs killed long ago (a live run touches its folder constantly)."""
    now = time.time()
    for p in folder.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def clear_cache(cache_dir: str | Path | None = None) -> int:
    """Delete every cached tensor set and the hash index; return the bytes freed (0 when caching is off)."""
    root = cache_root(cache_dir)
    if root is None or not root.exists():
        return 0
    freed = 0
    for target in (root / "tensors", root / _INDEX):
        if target.is_dir():
            freed += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            shutil.rmtree(target, ignore_errors=True)
        elif target.is_file():
            freed += target.stat().st_size
            target.unlink()
    return freed
