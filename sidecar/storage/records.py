"""What the service reads back from Redis besides the scripts' replies: the history in the
counts hash, an entry of an events stream, and a hash reply as text."""

from __future__ import annotations

from typing import Any

from sidecar.domain.decision import Event, PeriodCount


def history(counts: dict[str, str]) -> list[PeriodCount]:
    """The counts hash: ``period_key -> active``, ``period_key:limit -> limit`` and
    ``period_key:overage -> overage`` (its other ``period_key:<field>`` fields are not
    counts)."""
    return [
        PeriodCount(
            key,
            int(value),
            int(counts.get(f"{key}:limit", 0)),
            overage=int(counts.get(f"{key}:overage", 0)),
        )
        for key, value in counts.items()
        if ":" not in key
    ]


def event(entry_id: bytes, raw: Any) -> Event:
    """One entry of a workspace's events stream (``emit`` in ``decide.lua``)."""
    fields = decode_hash(raw)
    return Event(
        id=entry_id.decode(),
        workspace_id=fields["workspace"],
        type=fields["type"],
        period=fields["period"],
        threshold_percent=int(fields["threshold"]),
        active=int(fields["active"]),
        limit=int(fields["limit"]),
        at_ms=int(fields["at"]),
        plan=fields.get("plan", ""),
        packs=int(fields.get("packs", 0)),
        overage=int(fields.get("overage", 0)),
        trial_plan=fields.get("trial_plan", ""),
        trial_ends_at_ms=int(fields.get("trial_until", 0)),
    )


def decode_hash(raw: Any) -> dict[str, str]:
    """A hash reply (a dict, or a flat list of fields and values) as text."""
    if isinstance(raw, dict):
        return {k.decode(): v.decode() for k, v in raw.items()}
    items = list(raw or [])
    return {items[i].decode(): items[i + 1].decode() for i in range(0, len(items), 2)}
