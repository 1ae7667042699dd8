"""Watching the notification events of one workspace or of all, in id order."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from sidecar.domain.contact import validate_workspace_id
from sidecar.domain.decision import Event
from sidecar.domain.errors import InvalidArgument
from sidecar.domain.ports import EventStore

_EVENT_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
WATCH_COUNT = 100
RESUME_OVERLAP_MS = 5000


class EventWatch:
    """Recorded and live events.

    :param block_ms: how long one read waits for new events.
    :param refresh: seconds between looks for new workspaces while watching them all.
    """

    def __init__(self, store: EventStore, *, block_ms: int = 1000, refresh: float = 2.0) -> None:
        self._store = store
        self._block_ms = block_ms
        self._refresh = refresh

    async def watch(self, workspace_id: str, after_id: str) -> AsyncIterator[Event]:
        """Recorded events after ``after_id``, oldest first, then live ones, forever.

        With no workspace, events of every workspace in id order. Resuming then starts
        ``RESUME_OVERLAP_MS`` before ``after_id``, so an event of another workspace recorded
        in the same moment is not skipped: deliveries are at least once, deduplicate on
        (workspace, id).

        :raise InvalidArgument: for a malformed workspace id or event id, before any event.
        """
        if workspace_id:
            validate_workspace_id(workspace_id)
        if after_id and not _EVENT_ID.fullmatch(after_id):
            raise InvalidArgument("after_id", "must be an event id like 1763900000000-0")
        start = after_id or "0-0"
        if workspace_id:
            cursors = {workspace_id: start}
        else:
            start = f"{max(_id_tuple(start)[0] - RESUME_OVERLAP_MS, 0)}-0" if after_id else start
            cursors = {}
        refreshed = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if not workspace_id and loop.time() - refreshed >= self._refresh:
                for ws in await self._store.workspaces():
                    cursors.setdefault(ws, start)
                refreshed = loop.time()
            if not cursors:
                await asyncio.sleep(self._block_ms / 1000)
                continue
            events = await self._store.read_events(cursors, self._block_ms, WATCH_COUNT)
            for event in in_order(events, WATCH_COUNT):
                cursors[event.workspace_id] = event.id
                yield event


def in_order(events: list[Event], count: int) -> list[Event]:
    """The events that can go out in id order now.

    A stream that returned ``count`` events may hold more, older than what other streams
    returned; events past its last one wait for the next read, so ids never go backwards.
    """
    last: dict[str, tuple[int, int]] = {}
    per_stream: dict[str, int] = {}
    for event in events:
        per_stream[event.workspace_id] = per_stream.get(event.workspace_id, 0) + 1
        last[event.workspace_id] = _id_tuple(event.id)
    full = [last[ws] for ws, n in per_stream.items() if n >= count]
    cutoff = min(full) if full else None
    ready = [e for e in events if cutoff is None or _id_tuple(e.id) <= cutoff]
    return sorted(ready, key=lambda e: (_id_tuple(e.id), e.workspace_id))


def _id_tuple(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)
