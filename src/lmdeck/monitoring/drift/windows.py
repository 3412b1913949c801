"""The two windows a drift report compares: a reference window followed by a current window.

    windows = Windows.trailing(reference="7d", current="1d", until=now)
    windows.current      # Window(since=now - 1 day, until=now)
    windows.reference    # Window(since=now - 8 days, until=now - 1 day): the 7 days before it

Durations are a number and a unit: ``s``, ``m``, ``h``, ``d`` or ``w`` (``90m``, ``1.5h``, ``7d``), or a
bare number of seconds. Times are epoch seconds; a window holds ``since`` and excludes ``until``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.ASCII)
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}

#: The longest window a report reads (a year): a longer one is a mistake, not a question.
MAX_WINDOW_S = 366 * 86400.0


class WindowError(ValueError):
    """A window cannot be understood; ``param`` names it and the message says what is expected."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_duration(value: str | float, param: str) -> float:
    """Seconds in ``value`` (``7d``, ``12h``, ``30m``, ``3600``); a :class:`WindowError` naming ``param`` otherwise."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.fullmatch(value.strip().lower())
        if found is None:
            raise WindowError(param, f"expected a duration such as 7d, 12h or 30m, got {value!r}")
        seconds = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_WINDOW_S:
        raise WindowError(param, f"must be a duration above 0 and at most 366d, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Window:
    """``[since, until)`` in epoch seconds."""

    since: float
    until: float

    @property
    def seconds(self) -> float:
        return self.until - self.since

    def to_dict(self) -> dict[str, float]:
        return {"since": self.since, "until": self.until}


@dataclass(frozen=True)
class Windows:
    """A reference window and the current window after it."""

    reference: Window
    current: Window

    @classmethod
    def trailing(cls, *, reference: str | float, current: str | float, until: float) -> Windows:
        """The ``current`` duration ending at ``until`` and the ``reference`` duration just before it."""
        current_s = parse_duration(current, "current")
        reference_s = parse_duration(reference, "reference")
        start = until - current_s
        return cls(Window(start - reference_s, start), Window(start, until))
