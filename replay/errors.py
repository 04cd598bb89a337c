"""Error types shared by every layer.

    RolloutLabError
     ├── UserInputError   a scenario, log, artifact or option the user must fix;
     │                    the CLI prints it on one line and exits with code 2
     └── InternalError    a broken invariant inside the lab: a bug, exit code 3

Messages follow one shape so that people can act on them:
``"{source}: {field} must be {expectation}, got {value!r}"`` plus a hint where one helps.
"""

from __future__ import annotations

__all__ = [
    "ECHO_CHARS",
    "InternalError",
    "RolloutLabError",
    "UserInputError",
    "cut",
    "must_be",
    "shown",
]


class RolloutLabError(Exception):
    """Base class of every error the lab raises on purpose."""


class UserInputError(RolloutLabError):
    """Bad input from the user (scenario, log, artifact, option). One line, exit code 2."""

    def __init__(self, message: str) -> None:
        # One line, always: a message is printed as is by the CLI and read by CI logs.
        super().__init__(" ".join(message.split()))


class InternalError(RolloutLabError):
    """A broken invariant inside the lab: a bug to report, not a user mistake."""


#: Longest echo of a user's value in a message: a 2 MB string must not make a 2 MB line.
ECHO_CHARS = 60


def shown(value: object) -> str:
    """``repr(value)`` cut to ``ECHO_CHARS`` characters plus "…" (the value is the user's own:
    enough of it to recognise, never all of it)."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def cut(text: str) -> str:
    """``text`` cut to ``ECHO_CHARS`` characters plus "…" (for names echoed without quotes)."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def must_be(
    source: str, field: str, expectation: str, value: object, hint: str = ""
) -> UserInputError:
    """Build the canonical message: ``source: field must be expectation, got value``."""
    message = f"{source}: {field} must be {expectation}, got {shown(value)}"
    if hint:
        message += f" ({hint})"
    return UserInputError(message)
