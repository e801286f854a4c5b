"""Errors whose message is the whole story for the user, and validation errors as one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import ValidationError


class UserFacingError(Exception):
    """Printed by the CLI as one line, without a traceback: bad data, paths or artifacts."""


class ArtifactError(UserFacingError):
    """The artifacts folder is unusable; the message is the one line start-up prints."""


def dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def one_line(error: ValidationError, where: Callable[[Sequence[int | str]], str] = dotted) -> str:
    """A pydantic validation error as `place: problem; place: problem`."""
    parts = []
    for item in error.errors():
        place = where(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{place}: {message}" if place else message)
    return "; ".join(parts) or "invalid"
