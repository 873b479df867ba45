"""medfab train (being written)."""

from medfab.cli.common import friendly


@friendly
def train() -> None:
    """(being written)"""
    raise NotImplementedError
