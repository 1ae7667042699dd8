"""Statements: one per workspace and closed period of a month, paged over every workspace that
ever decided without loading them all (``SSCAN`` steps), each period closed first when due.

A page token carries the month, the scan's cursor and the last statement given at it, so a
token is only good for its own listing. Within one scan step the workspaces are taken in name
order, so a step read again goes on after the last statement given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidecar.domain.clock import Clock
from sidecar.domain.closing_ports import CloseStore
from sidecar.domain.errors import FailedPrecondition, InvalidArgument
from sidecar.domain.period import parse_period_name
from sidecar.domain.statement import Statement, closed_everywhere_at
from sidecar.usecases import pages
from sidecar.usecases.closing import PeriodClosing
from sidecar.usecases.pages import page_token, read_page_token

# Workspaces scanned by one call at most, in page sizes: a page may come back short (even
# empty, with a token) when few workspaces have a count in the month.
SCAN_PAGES = 10
_LISTING = "st1"  # what a statements listing's page token starts with
_TOKEN = re.compile(r"st1\|(\d{4}-\d{2})\|(\d{1,20})\|([A-Za-z0-9._-]*)\|([0-9@-]*)")


@dataclass(frozen=True, slots=True)
class StatementPage:
    """One page of a month's statements, and the token of the next ("" at the end)."""

    statements: list[Statement]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a listing goes on: the scan's cursor, and the last (workspace, period key)
    given at it (("", "") for none)."""

    cursor: int
    after: tuple[str, str] = ("", "")


def _token(name: str, position: _Position) -> str:
    workspace, key = position.after
    return page_token(f"{_LISTING}|{name}|{position.cursor}|{workspace}|{key}")


def _position(name: str, token: str) -> _Position:
    """The position a token of the listing of ``name`` holds.

    :raise InvalidArgument: for a token of another listing, or not one of this service.
    """
    if not token:
        return _Position(0)
    found = read_page_token(token, _TOKEN, "a statements listing")
    if found[1] != name:
        raise InvalidArgument("page_token", f"is a token of the listing of {found[1]}, not {name}")
    return _Position(int(found[2]), (found[3], found[4]))


class Statements:
    """Lists the statements of a closed month.

    :param closing: closes due periods and reads statements.
    :param store: where the workspaces are scanned.
    """

    def __init__(self, closing: PeriodClosing, store: CloseStore, clock: Clock) -> None:
        self._closing = closing
        self._store = store
        self._clock = clock

    async def list(self, period: str, page_size: int, page_token: str) -> StatementPage:
        """One page of the statements of the month ``period`` (``YYYY-MM``).

        :raise InvalidArgument: a bad period, page size or page token.
        :raise FailedPrecondition: the month may still be open in some time zone.
        """
        try:
            parse_period_name(period)
        except ValueError:
            raise InvalidArgument("period", "expected YYYY-MM, like 2026-11") from None
        size = pages.page_size(page_size)
        position = _position(period, page_token)
        closes = closed_everywhere_at(period, self._closing.lateness)
        if self._clock.now() < closes:
            raise FailedPrecondition(
                f"period {period} is not closed yet: its statements are final from "
                f"{closes.isoformat().replace('+00:00', 'Z')} (its end in every time zone "
                "and the lateness)"
            )
        return await self._page(period, size, position)

    async def _page(self, name: str, size: int, position: _Position) -> StatementPage:
        found: list[Statement] = []
        cursor, after = position.cursor, position.after
        scanned = 0
        while True:
            next_cursor, workspaces = await self._store.scan_workspaces(cursor, size)
            scanned += len(workspaces)
            ordered = sorted(set(workspaces))
            if after[0]:
                ordered = [w for w in ordered if w >= after[0]]
            start = 0
            while start < len(ordered):
                chunk = ordered[start : start + max(size - len(found), 16)]
                start += len(chunk)
                for statement in await self._closing.statements(chunk, name):
                    here = (statement.workspace_id, statement.period.key)
                    if after[0] and here <= after:
                        continue
                    if len(found) == size:
                        last = found[-1]
                        at = _Position(cursor, (last.workspace_id, last.period.key))
                        return StatementPage(found, _token(name, at))
                    found.append(statement)
            if next_cursor == 0:
                return StatementPage(found, "")
            cursor, after = next_cursor, ("", "")
            if len(found) == size or scanned >= SCAN_PAGES * size:
                return StatementPage(found, _token(name, _Position(cursor)))
