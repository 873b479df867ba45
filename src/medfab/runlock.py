"""One process at a time per output folder: an advisory lock file, and the clean-up a fresh holder may do.

``medfab train`` locks its run folder (``RUN/.lock``), ``medfab sample`` its output folder (``.OUT.lock``
beside it, because OUT itself must appear complete and at once). The lock is ``fcntl.flock`` on that file:
the kernel drops it when the holder exits or is killed, so a lock left by a dead process is never stale --
the next process simply takes it. The file holds the owner (pid, host, command, start time) so that a
refused user is told who holds the folder. Holding the lock also means that any temporary file in the folder
(``.<name>.tmp-<pid>``, written by :func:`medfab.training.checkpoint.atomic_write_json` and friends) was left
by a process that died mid-write, so :func:`remove_stale_temporaries` may delete them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Self

from medfab.errors import MedfabError

LOCK_NAME = ".lock"


class RunLock:
    """A held lock; :meth:`release` (or the holder's exit) frees it."""

    def __init__(self, path: Path, fd: int, created_dir: Path | None):
        self.path, self._fd, self._created_dir = path, fd, created_dir

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlinked while held: see the inode check in acquire()
        finally:
            os.close(self._fd)
            self._fd = None
        d = self._created_dir
        if d is not None and d.is_dir() and not any(d.iterdir()):
            d.rmdir()  # nothing was written (e.g. the command stopped on bad data): leave no empty folder

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _owner_text(path: Path) -> str:
    try:
        o = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o.get("started", 0)))
        return f"process {o.get('pid')} on {o.get('host')} ({o.get('command')}, since {since})"
    except (OSError, ValueError, AttributeError):
        return "another process (its details are not readable yet)"


def acquire(lock_path: str | Path, *, what: str, command: str | None = None,
            created_dir: Path | None = None) -> RunLock:
    """Take the lock at ``lock_path`` without waiting; a MedfabError names the holder when it is taken.

    ``what`` names the protected folder in messages. ``created_dir``: a folder made for this lock, removed
    again on release if it is still empty.
    """
    lock_path = Path(lock_path)
    command = command or " ".join(["medfab", *sys.argv[1:]])[:300]
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MedfabError(
                f"{what} is in use by {_owner_text(lock_path)}",
                f"wait for that command to finish (or stop it), or use another folder; the lock is {lock_path}, "
                "and it is freed by itself when its process ends",
            ) from None
        except OSError as e:  # a file system without flock (rare network mounts)
            os.close(fd)
            raise MedfabError(f"cannot lock {lock_path}: {e}", "use a folder on a local disk") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder unlinked the file between our open and flock: take the new one
            os.close(fd)
            continue
        break
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.time()}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    return RunLock(lock_path, fd, created_dir)


def lock_run(out: str | Path, *, command: str | None = None) -> RunLock:
    """Lock the run folder ``out`` (created if missing) for this process."""
    out = Path(out)
    created = None if out.exists() else out
    if out.exists() and not out.is_dir():
        raise MedfabError(f"--out {out} is a file, not a folder", "give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    lock = acquire(out / LOCK_NAME, what=f"run folder {out}", command=command, created_dir=created)
    remove_stale_temporaries(out)
    return lock


def lock_output(out: str | Path, *, command: str | None = None) -> RunLock:
    """Lock the output folder ``out`` through ``.OUT.lock`` beside it (``out`` itself is left untouched)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = acquire(out.parent / f".{out.name}.lock", what=f"output folder {out}", command=command)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):  # a killed run's half-built output
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    return lock


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete ``.*.tmp-*`` files left in ``run_dir`` and its checkpoint folders by a killed writer.

    Only call this while holding the run's lock: then no live process is writing them.
    """
    run_dir = Path(run_dir)
    removed = []
    subs = [p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink()] if run_dir.is_dir() else []
    folders = [run_dir, *subs, *(p / "checkpoints" for p in subs)]
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for f in folder.glob(".*.tmp-*"):
            if f.is_file() and not f.is_symlink():
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed
