"""Reading a workspace's audit trail: its records newest first, in pages.

A page token carries the workspace and the id of the last record given, so a token is only
good for its own workspace's listing; the next page goes on below that id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sidecar.domain.audit import DAY_MS, AuditRecord, AuditStore
from sidecar.domain.clock import Clock, to_ms
from sidecar.domain.contact import validate_workspace_id
from sidecar.domain.errors import InvalidArgument
from sidecar.usecases import pages
from sidecar.usecases.pages import page_token, read_page_token

_LISTING = "au1"  # what an audit listing's page token starts with
_TOKEN = re.compile(r"au1\|([A-Za-z0-9._-]{1,64})\|([0-9]{1,20}-[0-9]{1,20})")


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of a workspace's audit records, newest first, and the token of the next
    ("" at the end)."""

    records: list[AuditRecord]
    next_page_token: str


def _token(workspace_id: str, last_id: str) -> str:
    return page_token(f"{_LISTING}|{workspace_id}|{last_id}")


def _after(workspace_id: str, token: str) -> str:
    """The id of the last record the page of ``token`` gave ("" for no token).

    :raise InvalidArgument: for a token of another workspace, or not one of this service.
    """
    if not token:
        return ""
    found = read_page_token(token, _TOKEN, "an audit listing")
    if found[1] != workspace_id:
        raise InvalidArgument(
            "page_token", f"is a token of the audit records of {found[1]}, not {workspace_id}"
        )
    return found[2]


class AuditTrail:
    """Lists the audit records of a workspace.

    :param retention_days: how long records are kept: an older one is never listed, even
        before it is trimmed.
    """

    def __init__(self, store: AuditStore, clock: Clock, retention_days: int) -> None:
        self._store = store
        self._clock = clock
        self._retention_ms = retention_days * DAY_MS

    async def list(
        self, workspace_id: str, since: datetime | None, page_size: int, page_token: str
    ) -> AuditPage:
        """One page of the workspace's records, newest first, down to ``since`` (``None``:
        every record kept).

        :raise InvalidArgument: a bad workspace id, page size or page token.
        """
        validate_workspace_id(workspace_id)
        size = pages.page_size(page_size)
        after = _after(workspace_id, page_token)
        oldest = to_ms(self._clock.now()) - self._retention_ms
        if since is not None:
            oldest = max(oldest, to_ms(since))
        # one more than a page: whether there is a next one
        found = await self._store.audit_records(
            workspace_id, before_id=after, oldest_ms=oldest, count=size + 1
        )
        if len(found) <= size:
            return AuditPage(found, "")
        page = found[:size]
        return AuditPage(page, _token(workspace_id, page[-1].id))
