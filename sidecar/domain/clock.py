"""The time source, injected everywhere a decision depends on the current instant, and the one
place instants become unix milliseconds and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current instant as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` (aware)."""
        self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta``."""
        self._now += delta


def to_ms(instant: datetime) -> int:
    """An aware instant as unix milliseconds, the unit storage keeps time in."""
    return int(instant.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Unix milliseconds as an aware UTC instant."""
    return datetime.fromtimestamp(ms / 1000, UTC)
