"""medfab sample (being written)."""

from medfab.cli.common import friendly


@friendly
def sample() -> None:
    """(being written)"""
    raise NotImplementedError
