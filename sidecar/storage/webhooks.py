"""The webhook deliverers' side of Redis: a consumer group on each workspace's events stream,
a lease per workspace, and every command on a client of their own.

Each command touches the keys of one workspace (its stream and its lease share the workspace's
hash tag); only ``mac:workspaces`` and ``mac:webhooks:since`` stand alone. Nothing here runs on
the decision path's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sidecar.domain.delivery import Lease, NewEntries, StreamEntry, WorkspacePoll
from sidecar.storage import calls, records
from sidecar.storage.calls import Pooled
from sidecar.storage.connections import Client
from sidecar.storage.keys import WEBHOOK_GROUP, WEBHOOKS_SINCE, WorkspaceKeys
from sidecar.storage.scripts import WEBHOOK_POLL, WEBHOOK_READ_NEW, WEBHOOK_RELEASE, WEBHOOK_RENEW
from sidecar.storage.store import workspaces

_MAX_SEQUENCE = 2**64 - 1


# Whose a workspace's lease is, as webhook_poll.lua answers it.
_LEASE_STATES = {0: Lease.NONE, 1: Lease.MINE, 2: Lease.OTHER, 3: Lease.FREE}


class WebhookStreams:
    """The Redis commands of one webhook consumer (a ``WebhookStore``).

    :param client: a redis-py client of the deliverer's own.
    :param consumer: this consumer's name in every workspace's group, unique to the process.
    """

    def __init__(self, client: Client, consumer: str) -> None:
        self._connection = Pooled(client)
        self.consumer = consumer

    async def close(self) -> None:
        """Close the client's connections."""
        await self._connection.client.aclose()

    async def start_id(self) -> str:
        """The id new groups start after: just before webhooks were first turned on.

        The first deliverer ever started records Redis's time in ``mac:webhooks:since``; every
        later one reads it, so a group created for a workspace seen only later still delivers
        every event recorded since then, and none from before.
        """
        seconds, micros = await calls.command(self._connection, "webhook_since", "TIME")
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        await calls.command(self._connection, "webhook_since", "SET", WEBHOOKS_SINCE, now_ms, "NX")
        since = int(await calls.command(self._connection, "webhook_since", "GET", WEBHOOKS_SINCE))
        return f"{since - 1}-{_MAX_SEQUENCE}"

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events, sorted."""
        return await workspaces(self._connection)

    async def poll(
        self, workspaces: Sequence[str], *, start_id: str, lease_ms: int, take: bool
    ) -> list[WorkspacePoll]:
        """Run ``webhook_poll.lua`` for each workspace, all in one pipelined round trip.

        :param start_id: where a group created now starts (``start_id()``).
        :param take: take the lease of each workspace that has something to deliver and
            whose lease is free; else only look.
        """
        args = (WEBHOOK_GROUP, self.consumer, lease_ms, start_id, 1 if take else 0)
        polls = [
            ((keys.events, keys.webhook_lease), args) for keys in map(WorkspaceKeys, workspaces)
        ]
        replies = await calls.script_batch(self._connection, WEBHOOK_POLL, polls)
        return [
            WorkspacePoll(workspace, _id_ms(oldest), _LEASE_STATES[state])
            for workspace, (state, oldest) in zip(workspaces, replies, strict=True)
        ]

    async def renew(self, workspace_id: str, lease_ms: int) -> bool:
        """Extend the workspace's lease; False when it is no longer this consumer's."""
        lease = WorkspaceKeys(workspace_id).webhook_lease
        return bool(
            await calls.script(self._connection, WEBHOOK_RENEW, (lease,), (self.consumer, lease_ms))
        )

    async def release(self, workspace_id: str) -> None:
        """Give up the workspace's lease, if it is still this consumer's."""
        await calls.script(
            self._connection,
            WEBHOOK_RELEASE,
            (WorkspaceKeys(workspace_id).webhook_lease,),
            (self.consumer,),
        )

    async def claim(self, workspace_id: str, count: int = 100) -> int:
        """Take over every pending entry of the workspace's group (``XAUTOCLAIM``, any idle
        time: the lease says nobody else delivers them), and forget the consumers left with
        none. Answers how many pending entries had been trimmed from the stream meanwhile.
        """
        stream = WorkspaceKeys(workspace_id).events
        cursor, trimmed = "0-0", 0
        while True:
            reply = await calls.command(
                self._connection,
                "webhook_claim",
                "XAUTOCLAIM",
                stream,
                WEBHOOK_GROUP,
                self.consumer,
                0,
                cursor,
                "COUNT",
                count,
            )
            cursor = reply[0].decode()
            # Redis 7 lists apart (and forgets) pending entries no longer in the stream
            trimmed += len(reply[2])
            if cursor == "0-0":
                break
        consumers = await calls.command(
            self._connection, "webhook_claim", "XINFO", "CONSUMERS", stream, WEBHOOK_GROUP
        )
        for raw in consumers:
            info = _fields(raw)
            if info["name"] != self.consumer and info["pending"] == 0:
                await calls.command(
                    self._connection,
                    "webhook_claim",
                    "XGROUP",
                    "DELCONSUMER",
                    stream,
                    WEBHOOK_GROUP,
                    info["name"],
                )
        return trimmed

    async def pending(self, workspace_id: str, count: int) -> list[StreamEntry]:
        """This consumer's pending entries of the workspace, oldest first."""
        reply = await calls.command(
            self._connection,
            "webhook_read",
            "XREADGROUP",
            "GROUP",
            WEBHOOK_GROUP,
            self.consumer,
            "COUNT",
            count,
            "STREAMS",
            WorkspaceKeys(workspace_id).events,
            "0",
        )
        return _entries(reply[0][1] if reply else [])

    async def read_new(self, workspace_id: str, count: int) -> NewEntries:
        """Run ``webhook_read_new.lua``: up to ``count`` entries nobody read yet, oldest first."""
        skipped, entries = await calls.script(
            self._connection,
            WEBHOOK_READ_NEW,
            (WorkspaceKeys(workspace_id).events,),
            (WEBHOOK_GROUP, self.consumer, count),
        )
        return NewEntries(_entries(entries), int(skipped))

    async def ack(self, workspace_id: str, entry_id: str) -> None:
        """Mark the entry delivered (``XACK``)."""
        await calls.command(
            self._connection,
            "webhook_ack",
            "XACK",
            WorkspaceKeys(workspace_id).events,
            WEBHOOK_GROUP,
            entry_id,
        )


def _entries(raw: Sequence[Any]) -> list[StreamEntry]:
    return [
        StreamEntry(entry_id.decode(), records.event(entry_id, fields) if fields else None)
        for entry_id, fields in raw
    ]


def _fields(raw: Any) -> dict[str, Any]:
    """An ``XINFO`` map (a dict, or a flat list) with text keys and text or integer values."""
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    return {
        key.decode(): value.decode() if isinstance(value, bytes) else value for key, value in items
    }


def _id_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0]) if text else 0
