"""What every fuzzer here shares: Hypothesis settings, the outcome check, known bugs.

The property of every loader is the same: on any input it either returns a value or raises
``UserInputError`` whose message is one line naming the input; anything else escaping is a
bug.  Bugs found in modules this suite does not own can be listed in ``KNOWN_BUGS``: the
fuzzers then count them (``hypothesis.event``) instead of failing while a strict-xfail
reproduction keeps them visible.  The list is empty: every bug found so far is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings

from replay.errors import UserInputError

#: A few hundred examples per fuzzer: the default run.
FAST = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
#: The long run (``pytest -m slow``): at least 5,000 examples per fuzzer.
LONG = settings(FAST, max_examples=5000)


@dataclass(frozen=True)
class KnownBug:
    kind: type[BaseException]
    text: str  # a fragment of the exception's message ("" = any)
    where: str  # module and cause, for the event label and the xfail reason

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.kind) and self.text in str(exc)


#: Bugs found in modules this suite does not own and not fixed yet; the fuzzers count them
#: instead of failing.  Empty: the deep-nesting, huge-integer and huge-shape bugs are fixed
#: and their reproductions are plain regression tests now.
KNOWN_BUGS: tuple[KnownBug, ...] = ()

T = TypeVar("T")


def one_line(exc: UserInputError) -> str:
    message = str(exc)
    assert message, "an empty error message"
    assert "\n" not in message and "\r" not in message, message
    assert message == " ".join(message.split()), message
    return message


def attempt(call: Callable[[], T], *, names: tuple[str, ...]) -> T | None:
    """Run ``call``: its value, or None after a one-line ``UserInputError`` naming one of
    ``names``; a known bug is counted and gives None; anything else fails the example."""
    try:
        value = call()
    except UserInputError as exc:
        message = one_line(exc)
        assert message.startswith(names), f"message does not name the input: {message!r}"
        event("rejected with one line")
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        for bug in KNOWN_BUGS:
            if bug.matches(exc):
                event(f"known bug: {type(exc).__name__}")
                return None
        raise AssertionError(
            f"{type(exc).__name__} escaped instead of UserInputError: {exc!r}"[:2000]
        ) from exc
    event("accepted")
    return value


def describe(value: Any) -> str:
    """Short text of a value for hypothesis notes."""
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."
