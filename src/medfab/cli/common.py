"""What every command shares: input checks before any work, friendly errors instead of tracebacks, plain
warnings, the run-folder lock, and a rich console."""

from __future__ import annotations

import contextvars
import functools
import math
import os
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)

# Numeric options by parameter name, checked before any command starts: (low, high, low inclusive?).
# The same name means the same thing in every command (e.g. --size is always an image side in pixels).
LIMITS: dict[str, tuple[float, float, bool]] = {
    "size": (4, 2048, True),
    "minutes": (0, 60 * 24 * 365, False),
    "cpu_minutes": (0, 60 * 24 * 365, False),
    "kimg": (0, 1e7, False),
    "batch_size": (1, 1 << 16, True),
    "seed": (0, 2**32 - 1, True),
    "n_per_class": (1, 10**6 - 1, True),
    "balance_to": (1, 10**6 - 1, True),
    "n": (1, 10**7, True),
    "dims": (2, 3, True),
    "workers": (1, 256, True),
    "epochs": (1, 10**5, True),
    "seeds": (1, 100, True),
    "max_per_class": (1, 10**7, True),
    "val_fraction": (0, 0.9, False),
    "near_rmse": (0, 2, True),
    "port": (1, 65535, True),
    "threads": (1, 1024, True),
}
# Paths that must exist when given. "folder" | "file" | "any" (a folder or a file, e.g. a .npz).
EXISTING: dict[str, str] = {
    "data": "folder", "run": "folder", "real_train": "folder", "real_test": "folder", "synthetic": "folder",
    "eval_dir": "folder", "test": "folder", "path": "any", "config": "file", "labels_csv": "file",
    "extractor": "file", "checkpoint": "any",
}
# What --out may already be, per command (module.function). "run": missing, empty or a medfab run folder
# (resumed); "new": missing or an empty folder; "folder": any folder; "file": a file path (not a folder).
OUT_RULES: dict[str, str] = {
    "medfab.cli.train.train": "run", "medfab.cli.anomaly.fit": "run", "medfab.cli.sample.sample": "new",
    "medfab.cli.phantom.phantom": "new", "medfab.cli.data.split_cmd": "new",
    "medfab.cli.evaluate.evaluate": "folder", "medfab.cli.anomaly.eval_": "folder",
    "medfab.cli.report.report": "file",
}
RUN_MARKERS = ("config.json", "checkpoints", "anomaly.json", ".lock")


def check_range(flag: str, value, low: float, high: float, *, low_inclusive: bool = True) -> None:
    """A MedfabError unless ``low <= value <= high`` (``low < value`` when not ``low_inclusive``)."""
    from medfab.errors import MedfabError

    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        lo = f">= {low:g}" if low_inclusive else f"> {low:g}"
        raise MedfabError(f"{flag} must be {lo} and <= {high:g}, got {value}",
                          f"give a value in that range (see `medfab COMMAND --help` for {flag})")


def check_out(out: Path, rule: str) -> None:
    """``--out`` against the command's rule (see OUT_RULES) before any work is done."""
    from medfab.errors import MedfabError

    out = Path(out)
    if rule == "file":
        if out.is_dir():
            raise MedfabError(f"--out {out} is a folder", "give a file name, e.g. --out report.html")
        return
    if out.exists() and not out.is_dir():
        raise MedfabError(f"--out {out} is an existing file, not a folder", "give a new folder name for --out")
    if not out.is_dir() or rule == "folder":
        return
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    if rule == "run" and any(m in entries for m in RUN_MARKERS) or rule == "run" and _per_class_run(out):
        return
    what = "is not an empty folder" if rule == "new" else "holds files that are not a medfab run"
    raise MedfabError(f"--out {out} {what} ({len(entries)} entries, e.g. {min(entries)})",
                      "give a new (or empty) folder for --out, so that nothing of yours is overwritten")


def _per_class_run(out: Path) -> bool:
    return any((p / "config.json").is_file() for p in out.iterdir() if p.is_dir())


def check_params(qualname: str, params: dict) -> None:
    """Every numeric option in range, every input path present, --out usable: before the command starts."""
    from medfab.errors import MedfabError

    for name, value in params.items():
        flag = "--" + name.rstrip("_").replace("_", "-")
        if name in LIMITS:
            low, high, inclusive = LIMITS[name]
            check_range(flag, value, low, high, low_inclusive=inclusive)
        if name in EXISTING and value is not None and isinstance(value, (str, Path)):
            p, kind = Path(value), EXISTING[name]
            if name == "checkpoint" and not p.is_absolute() and not p.exists():
                continue  # may name a file inside RUN/checkpoints/: checked where the run is known
            if not p.exists():
                raise MedfabError(f"{flag if name not in ('path', 'eval_dir') else ''} {p} does not exist".strip(),
                                  "check the path (a typo, or a folder not made yet?)")
            if kind == "folder" and not p.is_dir():
                raise MedfabError(f"{flag} {p} is a file, not a folder", "give the folder")
            if kind == "file" and not p.is_file():
                raise MedfabError(f"{flag} {p} is a folder, not a file", "give the file")
    rule = OUT_RULES.get(qualname)
    if rule and params.get("out") is not None:
        check_out(Path(params["out"]), rule)


_held: contextvars.ContextVar[list | None] = contextvars.ContextVar("medfab_held_locks", default=None)


def hold_lock(lock) -> None:
    """Release ``lock`` when the running command ends (see :func:`friendly`), or at exit outside a command."""
    held = _held.get()
    if held is not None:
        held.append(lock)
    else:
        import atexit

        atexit.register(lock.release)


def lock_run_folder(out: Path):
    """Lock a run folder for this command (rank 0 only under torchrun), remove stale temporaries; see runlock."""
    from medfab.runlock import lock_run

    if os.environ.get("RANK", "0") != "0":
        return None
    lock = lock_run(out)
    hold_lock(lock)
    return lock


def lock_output_folder(out: Path):
    """Lock an output folder that must appear complete (``.OUT.lock`` beside it); see runlock."""
    from medfab.runlock import lock_output

    lock = lock_output(out)
    hold_lock(lock)
    return lock


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # A user needs the message, not medfab's source line that raised it.
    console.print(f"[yellow]warning:[/] {escape(str(message))}")


def friendly(fn):
    """Wrap a command: check its inputs first (see check_params), print a MedfabError as one clear message
    (exit 2), warnings as one plain line, and never a traceback.

    An unexpected exception is a bug: it prints one line saying so and exits with status 70.
    Set MEDFAB_DEBUG=1 to see the traceback.
    """
    qualname = f"{fn.__module__}.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        from medfab.errors import MedfabError

        token = _held.set([])
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                check_params(qualname, kwargs)
                return fn(*args, **kwargs)
        except MedfabError as e:
            if os.environ.get("MEDFAB_DEBUG"):
                raise
            console.print(f"[bold red]error:[/] {escape(e.message)}")
            if e.hint:
                console.print(f"[yellow]what to do:[/] {escape(e.hint)}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(130)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:
            if os.environ.get("MEDFAB_DEBUG"):
                raise
            code, message, hint = _describe(e, ValidationError)
            console.print(f"[bold red]error:[/] {escape(message)}")
            console.print(f"[yellow]what to do:[/] {escape(hint)}")
            raise typer.Exit(code) from None
        finally:
            for lock in reversed(_held.get() or []):
                lock.release()
            _held.reset(token)

    return wrapper


def _describe(e: Exception, validation_error: type) -> tuple[int, str, str]:
    """(exit code, message, hint) for an exception no check caught."""
    if isinstance(e, validation_error):
        err = e.errors()[0]
        return 2, f"invalid value for {'.'.join(map(str, err['loc'])) or 'an option'}: {err['msg']}", \
            "fix the value on the command line or in the config file"
    if isinstance(e, MemoryError):
        return 2, "out of memory", "use a smaller --size or --batch-size, or free memory"
    if isinstance(e, OSError) and e.filename is not None:
        return 2, f"{e.strerror or e} : {e.filename}", "check the path, its permissions and the free disk space"
    return 70, f"internal error ({type(e).__name__}: {e})", \
        "this is a bug in medfab: rerun with MEDFAB_DEBUG=1 to see where it happened, and report it"
