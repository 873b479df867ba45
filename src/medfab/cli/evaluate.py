"""medfab evaluate (being written)."""

from medfab.cli.common import friendly


@friendly
def evaluate() -> None:
    """(being written)"""
    raise NotImplementedError
