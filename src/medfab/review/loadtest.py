"""A load generator for a running review server: many reviewers answering at once over HTTP.

Used by ``tests/test_review_load.py`` and ``bench/bench_review_load.py``. Each reviewer is one thread with
its own keep-alive connection and session cookie; it loads its page, fetches the image, posts an answer and
follows on, until the page says it is done or the deadline passes. A connection error (e.g. the server was
killed) is retried on a fresh connection, so a restart in the middle is survived. An answer counts as
*acknowledged* when the server replied 303 to it: those are the answers that must never be lost.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
from dataclasses import dataclass, field

_FIELD = re.compile(r'name="(csrf|item)" value="([^"]*)"')
_IMG = re.compile(r'<img id="view0?" [^>]*src="([^"]+)"')


@dataclass
class ReviewerRun:
    token: str
    acknowledged: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # public id -> (says, label, quality)
    page_seconds: list[float] = field(default_factory=list)
    errors: int = 0
    done: bool = False


@dataclass
class LoadStats:
    runs: list[ReviewerRun]
    seconds: float

    @property
    def answers(self) -> int:
        return sum(len(r.acknowledged) for r in self.runs)

    @property
    def answers_per_s(self) -> float:
        return self.answers / self.seconds if self.seconds > 0 else 0.0

    def page_quantile(self, q: float) -> float:
        t = sorted(x for r in self.runs for x in r.page_seconds)
        return t[min(len(t) - 1, int(q * len(t)))] if t else float("nan")


class _Client:
    def __init__(self, host: str, port: int):
        self.host, self.port, self.cookie, self.conn = host, port, "", None

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        set_cookie = resp.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        return resp.status, resp.getheader("Location") or "", data


def _reviewer(run: ReviewerRun, host: str, port: int, classes: list[str], deadline: float, seed: int) -> None:
    from urllib.parse import urlencode

    rng = random.Random(seed)
    c = _Client(host, port)
    page = f"/r/{run.token}"
    while time.monotonic() < deadline:
        try:
            t0 = time.perf_counter()
            status, _, data = c.request("GET", page)
            run.page_seconds.append(time.perf_counter() - t0)
            html = data.decode()
            if status != 200:
                run.errors += 1
                continue
            if "Thank you" in html:
                run.done = True
                return
            fields = dict(_FIELD.findall(html))
            img = _IMG.search(html)
            if img:
                c.request("GET", img.group(1))
            answer = (rng.choice(["real", "synthetic"]), rng.choice(classes), rng.randint(1, 5))
            body = urlencode({**fields, "says": answer[0], "label": answer[1], "quality": answer[2], "comment": ""})
            status, _, _ = c.request("POST", f"{page}/answer", body)
            if status == 303:
                run.acknowledged[fields["item"]] = answer
            else:
                run.errors += 1
        except (OSError, http.client.HTTPException, KeyError):
            run.errors += 1
            time.sleep(0.02)  # the server is restarting: try again on a new connection


def run_load(host: str, port: int, tokens: list[str], classes: list[str], *, max_seconds: float = 60.0) -> LoadStats:
    """Every token answers every image concurrently; stops when all are done or after ``max_seconds``."""
    runs = [ReviewerRun(t) for t in tokens]
    deadline = time.monotonic() + max_seconds
    threads = [threading.Thread(target=_reviewer, args=(r, host, port, classes, deadline, i), daemon=True)
               for i, r in enumerate(runs)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    return LoadStats(runs, time.perf_counter() - t0)
