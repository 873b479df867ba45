"""The one exception type a user sees: what is wrong, and what to do about it."""

from __future__ import annotations


class MedfabError(Exception):
    """An error in the user's input or environment, with a hint on how to fix it.

    The CLI prints ``message`` and ``hint`` without a traceback and exits with status 2.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  -> {self.hint}"
