"""Run the review app under waitress, a multi-threaded production WSGI server (no Flask debug server)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from medfab.errors import MedfabError


def make_server(review_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8765, threads: int = 8):
    """A bound waitress server for the review in ``review_dir`` (call ``.run()`` to serve)."""
    from waitress import create_server

    from medfab.review.app import create_app

    app = create_app(review_dir)
    try:
        return create_server(app, host=host, port=port, threads=threads, ident="medfab-review",
                             expose_tracebacks=False)
    except OSError as e:
        raise MedfabError(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            "another program (or another review) uses this port: stop it or pick another with --port P",
        ) from None


def run(server, *, minutes: float | None = None) -> None:
    """Serve until Ctrl-C (or SIGTERM), or for ``minutes``. Answers are committed as they come: stopping loses none."""
    # Explicit handlers: a shell starts background jobs with SIGINT ignored, which would make Ctrl-C,
    # SIGTERM and --minutes no-ops. Each of them ends server.run() through KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if minutes is not None:
        timer = threading.Timer(minutes * 60, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()
    try:
        server.run()  # returns after KeyboardInterrupt, once its worker threads are shut down
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
