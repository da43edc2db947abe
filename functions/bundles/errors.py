"""What every bundle check raises."""

from __future__ import annotations

from typing import Iterable


class BundleError(ValueError):
    """A problem with an uploaded bundle, with a message that tells the user what to fix."""

    def __init__(self, message: str, field: str | None = None, errors: Iterable[tuple[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors: list[tuple[str, str]] = list(errors) if errors else [(field or "", message)]

    def __str__(self) -> str:
        return self.message

