"""Load on the expert-review server: N reviewers answer M images each, all at once, on localhost.

    .venv/bin/python bench/bench_review_load.py [--reviewers 20] [--images 100] [--threads 8] [--kill]

Starts `medfab review serve` (waitress) as a child process on tiny generated PNGs, drives it with one thread
per reviewer (page, image, answer, next), and prints the page time (p50, p95, p99) and answers per second.
``--kill`` SIGKILLs the server half-way and restarts it, then checks that no acknowledged answer was lost.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _review_data import CLASSES, free_port, make_folders, start_server

from medfab.review.db import ReviewDB
from medfab.review.loadtest import run_load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviewers", type=int, default=20)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--kill", action="store_true", help="SIGKILL and restart the server half-way")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real, synth = make_folders(tmp, per_class=(args.images + 3) // 4)
        out, port = tmp / "review", free_port()
        server = start_server(real, synth, out, port, n=args.images, threads=args.threads)
        try:
            db = ReviewDB(out)
            tokens = [db.add_reviewer(f"r{i:03d}").token for i in range(args.reviewers)]
            res: dict = {}
            load = threading.Thread(target=lambda: res.update(
                s=run_load("127.0.0.1", port, tokens, list(CLASSES), max_seconds=args.max_seconds)))
            load.start()
            if args.kill:
                total = args.reviewers * args.images
                while load.is_alive() and db.conn().execute("SELECT count(*) FROM answers").fetchone()[0] < total / 2:
                    time.sleep(0.02)
                server.send_signal(signal.SIGKILL)
                server.wait()
                server = start_server(real, synth, out, port, n=args.images, threads=args.threads)
            load.join()
        finally:
            server.kill()
            server.wait()
        s = res["s"]
        con = sqlite3.connect(out / "review.sqlite")
        stored = {(t, p): (a, lab, q) for t, p, a, lab, q in con.execute(
            "SELECT r.token, i.public_id, a.says, a.label, a.quality FROM answers a "
            "JOIN reviewers r ON r.id = a.reviewer_id JOIN items i ON i.id = a.item_id")}
        lost = sum(stored.get((r.token, pid)) != ans for r in s.runs for pid, ans in r.acknowledged.items())
        print(f"reviewers {args.reviewers} x images {args.images}, waitress threads {args.threads}"
              f"{', SIGKILL + restart half-way' if args.kill else ''}")
        print(f"answers acknowledged {s.answers}, stored {len(stored)}, acknowledged but lost {lost}, "
              f"reviewers finished {sum(r.done for r in s.runs)}/{len(s.runs)}")
        print(f"wall {s.seconds:.1f} s, answers/s {s.answers_per_s:.0f}")
        print(f"page time ms: p50 {1000 * s.page_quantile(0.5):.1f}, p95 {1000 * s.page_quantile(0.95):.1f}, "
              f"p99 {1000 * s.page_quantile(0.99):.1f}")


if __name__ == "__main__":
    main()
