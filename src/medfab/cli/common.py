"""What every command shares: friendly errors instead of tracebacks, and a rich console."""

from __future__ import annotations

import functools
import os
import sys

import typer
from rich.console import Console

console = Console(stderr=True)


def friendly(fn):
    """Wrap a command so that a MedfabError prints as one clear message (exit 2), not a traceback.

    Set MEDFAB_DEBUG=1 to see the traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from medfab.errors import MedfabError

        try:
            return fn(*args, **kwargs)
        except MedfabError as e:
            if os.environ.get("MEDFAB_DEBUG"):
                raise
            console.print(f"[bold red]error:[/] {e.message}")
            if e.hint:
                console.print(f"[yellow]what to do:[/] {e.hint}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(130)

    return wrapper
