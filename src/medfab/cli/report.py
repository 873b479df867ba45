"""medfab report (being written)."""

from medfab.cli.common import friendly


@friendly
def report() -> None:
    """(being written)"""
    raise NotImplementedError
