"""The audit trail in Redis: each workspace's audit stream (``lib/audit.lua`` appends to it)
read back as records, with the subscription's stored fields named and written as the API
names and writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidecar.domain.audit import AuditChange, AuditRecord
from sidecar.domain.clock import from_ms
from sidecar.storage import calls, codec, records
from sidecar.storage.calls import Pooled
from sidecar.storage.connections import Client
from sidecar.storage.keys import WorkspaceKeys

SET_SUBSCRIPTION = "SetSubscription"
# What follows from the other subscription fields (the plan's limit and trial, the major, the
# time of the change): not what an admin changed, so not in the audit record.
DERIVED_SUBSCRIPTION_FIELDS = frozenset(
    ("major", "limit", "trial_plan", "trial_limit", "trial_days", "updated_at")
)
# The fields whose change set_subscription.lua records: every field of
# codec.SUBSCRIPTION_FIELDS but the derived ones, so a field added there is audited.
AUDITED_SUBSCRIPTION_FIELDS = tuple(
    f for f in codec.SUBSCRIPTION_FIELDS if f not in DERIVED_SUBSCRIPTION_FIELDS
)


def _bool_text(value: str) -> str:
    return {"1": "true", "0": "false"}.get(value, value)


def _instant_text(value: str) -> str:
    """A stored unix ms as ISO 8601 (UTC), "" for none."""
    if not value.isdigit() or int(value) == 0:
        return ""
    return from_ms(int(value)).isoformat().replace("+00:00", "Z")


# A subscription field stored under another name than the API's (codec.SUBSCRIPTION_FIELDS).
# A field added to the subscription is audited under its stored name unless named here.
API_FIELD_NAMES = {
    "shadow": "shadow_mode",
    "flood_rate": "flood_guard.new_per_minute",
    "flood_action": "flood_guard.action",
}
# How a stored subscription value is written in the API, where it differs.
API_FIELD_VALUES: dict[str, Callable[[str], str]] = {
    "shadow": _bool_text,
    "starts_at": _instant_text,
}


def _api_change(method: str, field: str, before: str, after: str) -> AuditChange:
    if method != SET_SUBSCRIPTION:
        return AuditChange(field, before, after)
    write = API_FIELD_VALUES.get(field)
    if write is not None:
        before, after = (write(before) if before else ""), write(after)
    return AuditChange(API_FIELD_NAMES.get(field, field), before, after)


def audit_record(workspace_id: str, entry_id: bytes | str, raw: Any) -> AuditRecord:
    """One entry of a workspace's audit stream (``append_audit`` in ``lib/audit.lua``):
    ``admin``, ``method``, ``at``, ``changed``, then ``b:<field>`` and ``a:<field>`` of each
    change in order."""
    fields = records.decode_hash(raw)
    method = fields.get("method", "")
    order: list[str] = []
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for name, value in fields.items():
        side, _, field = name.partition(":")
        if side not in ("b", "a") or not field:
            continue
        if field not in order:
            order.append(field)
        (before if side == "b" else after)[field] = value
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return AuditRecord(
        id=entry,
        at=from_ms(int(fields.get("at", entry.partition("-")[0]))),
        admin=fields.get("admin", ""),
        method=method,
        workspace_id=workspace_id,
        changed=fields.get("changed") == "1",
        changes=tuple(_api_change(method, f, before.get(f, ""), after.get(f, "")) for f in order),
    )


class RedisAuditTrail:
    """Reads the workspaces' audit streams (implements ``AuditStore``) on a redis-py client
    (the operator pool)."""

    def __init__(self, client: Client) -> None:
        self._connection = Pooled(client)

    async def audit_records(
        self, workspace_id: str, *, before_id: str, oldest_ms: int, count: int
    ) -> list[AuditRecord]:
        """``XREVRANGE`` from before ``before_id`` (exclusive) down to ``oldest_ms``."""
        end = f"({before_id}" if before_id else "+"
        reply = await calls.command(
            self._connection,
            "audit_records",
            "XREVRANGE",
            WorkspaceKeys(workspace_id).audit,
            end,
            max(oldest_ms, 0),
            "COUNT",
            count,
        )
        return [audit_record(workspace_id, entry_id, raw) for entry_id, raw in reply or []]
