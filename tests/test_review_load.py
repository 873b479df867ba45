"""Load on localhost: 20 reviewers answer 100 images each at once against `medfab review serve` (waitress,
a real process). The server is SIGKILLed in the middle and restarted: no acknowledged answer may be lost,
none may be stored twice, every reviewer still finishes. Bounded: stops by itself within max_seconds."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

from _review_data import CLASSES, free_port, make_folders, start_server

from medfab.review.db import ReviewDB
from medfab.review.loadtest import run_load

N_REVIEWERS, N_IMAGES = 20, 100


def test_twenty_reviewers_with_a_sigkill_in_the_middle(tmp_path):
    real, synth = make_folders(tmp_path, per_class=N_IMAGES // 4)
    out, port = tmp_path / "review", free_port()
    server = start_server(real, synth, out, port, n=N_IMAGES)
    try:
        db = ReviewDB(out)
        tokens = [db.add_reviewer(f"r{i:02d}").token for i in range(N_REVIEWERS)]
        result = {}
        load = threading.Thread(target=lambda: result.update(
            stats=run_load("127.0.0.1", port, tokens, list(CLASSES), max_seconds=45)))
        t0 = time.monotonic()
        load.start()
        while db.conn().execute("SELECT count(*) FROM answers").fetchone()[0] < 0.4 * N_REVIEWERS * N_IMAGES:
            assert time.monotonic() - t0 < 30, "answers do not come in"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        server = start_server(real, synth, out, port, n=N_IMAGES)  # same command: continues the same review
        load.join(60)
        assert not load.is_alive()
    finally:
        server.kill()
        server.wait(10)
    stats = result["stats"]
    print(f"\n{stats.answers} acknowledged answers in {stats.seconds:.1f} s ({stats.answers_per_s:.0f}/s); "
          f"page time p50 {1000 * stats.page_quantile(0.5):.1f} ms, p95 {1000 * stats.page_quantile(0.95):.1f} ms")
    assert all(r.done for r in stats.runs), "every reviewer reaches the end despite the restart"

    con = sqlite3.connect(out / "review.sqlite")
    public = dict(con.execute("SELECT public_id, id FROM items"))
    rows = con.execute("SELECT r.token, a.item_id, a.says, a.label, a.quality FROM answers a "
                       "JOIN reviewers r ON r.id = a.reviewer_id").fetchall()
    assert len(rows) == N_REVIEWERS * N_IMAGES  # nothing missing ...
    assert len({(t, i) for t, i, *_ in rows}) == len(rows)  # ... and nothing twice
    stored = {(t, i): (s, lab, q) for t, i, s, lab, q in rows}
    for run in stats.runs:
        for pid, answer in run.acknowledged.items():
            assert stored[(run.token, public[pid])] == answer  # every acknowledged answer, as given
    assert stats.page_quantile(0.95) < 2.0
