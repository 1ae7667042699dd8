"""Coalesced decisions: the single-contact decisions of one workspace that arrive while one of
its decisions is on its way to storage go to storage together when it returns, as one request
decided in arrival order in one atomic step; each caller gets its own outcome back.

Deciding contacts in order in one script call is what deciding them one after the other would
do, so the limit stays exact; a caller's usage is the workspace's after the whole group (as in
a batch). A decision that finds nothing on its way is sent at once: coalescing costs a caller
nothing when it is alone, and under load groups form by themselves, as in a group commit.
Dry runs are never coalesced: a dry run counts the contacts it would admit, so two checks
decided together would see each other. Nor are batches: they are one atomic step already.

Requests of different periods are never grouped (nor those of different days, or a late one
with one that is not): an event time (``occurred_at``) decides in the period of the event, so
two requests arriving together may be bound for different periods. A group is decided at the
``now_ms`` of its first request: the instant the trial's end is compared with, a trial would
start at, and events are recorded at. Without event times its requests differ by the time one
call to storage takes; with them, by at most the day they share.
"""

from __future__ import annotations

import asyncio
import dataclasses

from sidecar.domain.ports import DecideReply, DecideRequest, DecisionStore

# The most contacts one coalesced call carries; a request finding the next group full is sent
# on its own.
GROUP_MAX = 256

_Key = tuple[str, str, str, str, bool]
_Group = list[tuple[DecideRequest, "asyncio.Future[DecideReply]"]]


class Coalescer:
    """Groups the requests of one (workspace, period, subscription version, day, late) that
    arrive while a request of the same key is on its way to ``DecisionStore.decide``.

    A key has at most one call on its way at a time (and more only when a group is full): the
    first request goes at once; the ones arriving before its reply wait for it, then go as
    one group, in a task of its own (so that no caller's cancellation cancels the others'
    decision); the ones arriving meanwhile form the next group, and so on until none waits.

    :param store: where the grouped requests go.
    """

    def __init__(self, store: DecisionStore) -> None:
        self._store = store
        # the keys with a call on its way, and the group each gathers for its next call
        self._waiting: dict[_Key, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()  # held until done

    async def decide(self, request: DecideRequest) -> DecideReply:
        """``DecisionStore.decide`` for ``request``, at once, or together with the requests
        of its key that arrive while one is on its way (a request of one contact, not a dry
        run).

        :raise StaleSubscription: and any storage error, for every request of the group.
        """
        if request.dry_run or len(request.contacts) != 1:
            return await self._store.decide(request)
        key = (
            request.workspace_id,
            request.period.key,
            request.subscription_version,
            request.day,
            request.late,
        )
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = []  # on its way: the next ones gather
            try:
                return await self._store.decide(request)
            finally:
                self._send_next(key)
        if len(waiting) >= GROUP_MAX:
            return await self._store.decide(request)
        future: asyncio.Future[DecideReply] = asyncio.get_running_loop().create_future()
        waiting.append((request, future))
        return await future

    def _send_next(self, key: _Key) -> None:
        """The call of ``key`` returned: send what gathered meanwhile, or free the key."""
        group = self._waiting.get(key)
        if not group:
            self._waiting.pop(key, None)
            return
        self._waiting[key] = []
        task = asyncio.get_running_loop().create_task(self._decide(key, group))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _decide(self, key: _Key, group: _Group) -> None:
        try:
            if len(group) == 1:
                request = group[0][0]
            else:
                contacts = [c for request, _ in group for c in request.contacts]
                request = dataclasses.replace(group[0][0], contacts=contacts)
            try:
                reply = await self._store.decide(request)
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
                    outcomes = reply.outcomes[start:end]
                    future.set_result(dataclasses.replace(reply, outcomes=outcomes))
                start = end
        finally:
            self._send_next(key)
