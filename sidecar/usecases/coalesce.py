"""Coalesced decisions: the single-contact decisions of one workspace that arrive in one
event-loop turn go to storage as one request, decided in arrival order in one atomic step; each
caller gets its own outcome back.

Deciding contacts in order in one script call is what deciding them one after the other would
do, so the limit stays exact; a caller's usage is the workspace's after the whole group (as in
a batch). Dry runs are never coalesced: a dry run counts the contacts it would admit, so two
checks decided together would see each other.
"""

from __future__ import annotations

import asyncio
import dataclasses

from sidecar.domain.ports import DecideReply, DecideRequest, DecisionStore

# The most contacts one coalesced call carries; a larger group starts another call.
GROUP_MAX = 256

_Key = tuple[str, str, str, str]


class Coalescer:
    """Groups the requests of one (workspace, period, subscription version, day) queued in the
    same loop turn into one ``DecisionStore.decide``.

    :param store: where the grouped requests go.
    """

    def __init__(self, store: DecisionStore) -> None:
        self._store = store
        self._groups: dict[_Key, list[tuple[DecideRequest, asyncio.Future[DecideReply]]]] = {}

    async def decide(self, request: DecideRequest) -> DecideReply:
        """``DecisionStore.decide`` for ``request``, together with the requests of the same
        group queued in this loop turn.

        :raise StaleSubscription: and any storage error, for every request of the group.
        """
        if request.dry_run:
            return await self._store.decide(request)
        key = (
            request.workspace_id,
            request.period.key,
            request.subscription_version,
            request.day,
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DecideReply] = loop.create_future()
        group = self._groups.get(key)
        if group is None or len(group) >= GROUP_MAX:
            group = self._groups[key] = []
            loop.call_soon(self._send, key, group)
        group.append((request, future))
        return await future

    def _send(
        self, key: _Key, group: list[tuple[DecideRequest, asyncio.Future[DecideReply]]]
    ) -> None:
        if self._groups.get(key) is group:
            del self._groups[key]
        asyncio.get_running_loop().create_task(self._decide(group))

    async def _decide(self, group: list[tuple[DecideRequest, asyncio.Future[DecideReply]]]) -> None:
        first = group[0][0]
        merged = first
        if len(group) > 1:
            merged = dataclasses.replace(
                first, contacts=[c for request, _ in group for c in request.contacts]
            )
        try:
            reply = await self._store.decide(merged)
        except BaseException as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for request, future in group:
            end = start + len(request.contacts)
            if not future.done():
                future.set_result(
                    dataclasses.replace(reply, outcomes=reply.outcomes[start:end])
                    if len(group) > 1
                    else reply
                )
            start = end
