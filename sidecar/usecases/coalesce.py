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

    The first request of a group leads it: it lets the loop turn finish (the others queued in
    it join the group), then sends its request alone when nobody joined, as if there were no
    coalescing, or the group's in a task of its own (so that no caller's cancellation cancels
    the others' decision).

    :param store: where the grouped requests go.
    """

    def __init__(self, store: DecisionStore) -> None:
        self._store = store
        self._groups: dict[_Key, list[tuple[DecideRequest, asyncio.Future[DecideReply]]]] = {}
        self._sending: set[asyncio.Task[None]] = set()  # held until done

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
        if group is not None and len(group) < GROUP_MAX:
            group.append((request, future))
            return await future
        group = self._groups[key] = [(request, future)]
        try:
            await asyncio.sleep(0)  # the decisions queued in this turn join the group
        finally:
            if self._groups.get(key) is group:
                del self._groups[key]
            if len(group) > 1:
                task = loop.create_task(self._decide(group))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        if len(group) == 1:
            return await self._store.decide(request)
        return await future

    async def _decide(self, group: list[tuple[DecideRequest, asyncio.Future[DecideReply]]]) -> None:
        merged = dataclasses.replace(
            group[0][0], contacts=[c for request, _ in group for c in request.contacts]
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
                future.set_result(dataclasses.replace(reply, outcomes=reply.outcomes[start:end]))
            start = end
