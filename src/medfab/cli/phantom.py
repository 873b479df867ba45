"""medfab phantom (being written)."""

from medfab.cli.common import friendly


@friendly
def phantom() -> None:
    """(being written)"""
    raise NotImplementedError
