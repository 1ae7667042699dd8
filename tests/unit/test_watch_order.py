"""Events of several workspaces go out in id order, even when a read was cut short."""

from __future__ import annotations

from sidecar.domain.decision import Event
from sidecar.usecases.events import in_order


def event(ws: str, ms: int) -> Event:
    return Event(f"{ms}-0", ws, "THRESHOLD_CROSSED", "2026-11", 80, 8, 10, ms)


def test_a_truncated_stream_holds_back_later_events_of_others() -> None:
    a = [event("a", ms) for ms in (100, 101, 102)]  # full: count=3, may hold more
    b = [event("b", ms) for ms in (99, 150)]
    ready = in_order(a + b, count=3)
    assert [(e.workspace_id, e.id) for e in ready] == [
        ("b", "99-0"),
        ("a", "100-0"),
        ("a", "101-0"),
        ("a", "102-0"),
    ]


def test_nothing_truncated_everything_goesin_order() -> None:
    ready = in_order([event("b", 5), event("a", 7), event("a", 3)], count=100)
    assert [e.id for e in ready] == ["3-0", "5-0", "7-0"]
