"""The review database: one SQLite file, ``REVIEW_DIR/review.sqlite``, in WAL mode.

Tables::

    meta(key, value)                      options of the review (folders, n, seed, url, secret key)
    items(id, public_id, source, label,   the fixed selection: ``public_id`` is the opaque random id an
          path, reader, idx, axis, ndim)  image is served by; ``path`` never leaves the server
    reviewers(id, name, token, created)
    answers(reviewer_id, item_id, ...)    one row per reviewer and image (primary key: no duplicates)

Every statement is parameterised. One connection per thread (SQLite connections are not shared across
threads); WAL lets readers run while one writer commits. ``synchronous=NORMAL`` in WAL mode loses nothing
when the *process* dies (SIGKILL): a commit is in the WAL file before the answer is acknowledged. Only a
power cut could drop the last commits, which is acceptable for a review that can be re-answered.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from medfab.errors import MedfabError

DB_NAME = "review.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL CHECK (source IN ('real', 'synthetic')),
    label TEXT NOT NULL,
    path TEXT NOT NULL,
    reader TEXT NOT NULL,
    idx INTEGER,
    axis INTEGER,
    ndim INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reviewers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    reviewer_id INTEGER NOT NULL REFERENCES reviewers(id),
    item_id INTEGER NOT NULL REFERENCES items(id),
    says TEXT NOT NULL CHECK (says IN ('real', 'synthetic')),
    label TEXT NOT NULL,
    quality INTEGER NOT NULL CHECK (quality BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    answered REAL NOT NULL,
    PRIMARY KEY (reviewer_id, item_id)
);
"""


@dataclass(frozen=True)
class Item:
    id: int
    public_id: str
    source: str        # "real" | "synthetic": the truth, never sent to a reviewer
    label: str         # class
    path: str
    reader: str        # medfab reader name: "image", "nifti", "dicom", "npz"
    idx: int | None
    axis: int | None
    ndim: int          # 2 or 3


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str
    token: str


@dataclass(frozen=True)
class Answer:
    reviewer: str
    item_id: int
    says: str
    label: str
    quality: int
    comment: str


def db_path(review_dir: str | Path) -> Path:
    return Path(review_dir) / DB_NAME


class ReviewDB:
    """Thread-safe access to one review database (a connection per thread)."""

    def __init__(self, review_dir: str | Path, *, create: bool = False):
        self.review_dir = Path(review_dir)
        self.path = db_path(review_dir)
        if self.review_dir.exists() and not self.review_dir.is_dir():
            raise MedfabError(f"{self.review_dir} is a file, not a review folder", "give a folder path for the review")
        if not self.path.is_file():
            if not create:
                raise MedfabError(
                    f"{self.review_dir} holds no review ({DB_NAME} is missing)",
                    "start one with `medfab review serve --real DIR --synthetic DIR --out REVIEW_DIR`",
                )
            self.review_dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        try:
            self.conn().executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise MedfabError(f"cannot open {self.path}: {e}", "the file is not a medfab review database") from None

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=NORMAL")
                c.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise MedfabError(f"cannot open {self.path}: {e}", "the file is not a medfab review database") from None
            self._local.conn = c
        return c

    def tx(self):
        """``with db.tx() as c:`` one immediate transaction (committed on exit, rolled back on error)."""
        return _Tx(self.conn())

    # ---- meta ----
    def get_meta(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      (key, value))

    def secret_key(self) -> str:
        """The key that signs session cookies; made once, so sessions survive a restart."""
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)", (secrets.token_hex(32),))
        return self.get_meta("secret_key") or ""

    # ---- items ----
    def has_items(self) -> bool:
        return self.conn().execute("SELECT 1 FROM items LIMIT 1").fetchone() is not None

    def insert_items(self, rows: list[dict]) -> None:
        with self.tx() as c:
            c.executemany(
                "INSERT INTO items (public_id, source, label, path, reader, idx, axis, ndim) "
                "VALUES (:public_id, :source, :label, :path, :reader, :idx, :axis, :ndim)",
                rows,
            )

    def items(self) -> list[Item]:
        rows = self.conn().execute(
            "SELECT id, public_id, source, label, path, reader, idx, axis, ndim FROM items ORDER BY id"
        ).fetchall()
        return [Item(*r) for r in rows]

    # ---- reviewers ----
    def add_reviewer(self, name: str) -> Reviewer:
        token = secrets.token_urlsafe(32)
        try:
            with self.tx() as c:
                cur = c.execute("INSERT INTO reviewers (name, token, created) VALUES (?, ?, ?)",
                                (name, token, time.time()))
        except sqlite3.IntegrityError:
            raise MedfabError(f"a reviewer called {name!r} already exists",
                              "choose another name (each reviewer needs their own link)") from None
        return Reviewer(cur.lastrowid, name, token)

    def reviewers(self) -> list[Reviewer]:
        return [Reviewer(*r) for r in self.conn().execute("SELECT id, name, token FROM reviewers ORDER BY id")]

    def reviewer_by_token(self, token: str) -> Reviewer | None:
        """Compares the token with every reviewer's in constant time (no early exit, no index lookup)."""
        found = None
        given = token.encode("utf-8", "replace")
        for r in self.reviewers():
            if hmac.compare_digest(given, r.token.encode()):
                found = r
        return found

    # ---- answers ----
    def answered_ids(self, reviewer_id: int) -> set[int]:
        rows = self.conn().execute("SELECT item_id FROM answers WHERE reviewer_id = ?", (reviewer_id,))
        return {r[0] for r in rows}

    def save_answer(self, reviewer_id: int, item_id: int, says: str, label: str, quality: int, comment: str) -> bool:
        """Store an answer; False when this reviewer had already answered this image (the first answer stays)."""
        with self.tx() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO answers (reviewer_id, item_id, says, label, quality, comment, answered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (reviewer_id, item_id, says, label, quality, comment, time.time()),
            )
        return cur.rowcount == 1

    def answers(self) -> list[Answer]:
        rows = self.conn().execute(
            "SELECT r.name, a.item_id, a.says, a.label, a.quality, a.comment FROM answers a "
            "JOIN reviewers r ON r.id = a.reviewer_id ORDER BY r.id, a.answered"
        ).fetchall()
        return [Answer(*r) for r in rows]

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None


class _Tx:
    def __init__(self, conn: sqlite3.Connection):
        self.c = conn

    def __enter__(self) -> sqlite3.Connection:
        self.c.execute("BEGIN IMMEDIATE")
        return self.c

    def __exit__(self, exc_type, exc, tb) -> None:
        self.c.execute("ROLLBACK" if exc_type else "COMMIT")
