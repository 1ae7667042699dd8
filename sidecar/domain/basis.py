"""What a decision takes from the subscription before the script runs, as this process last
saw it; the decision script checks the version, so a stale copy costs one retry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SubscriptionBasis:
    """The subscription's time zone and start (unix ms, 0 for none), which the periods follow;
    its default phone region (ISO 3166, "" for none), which national phone numbers are read in;
    and its version ("" for no subscription)."""

    timezone: str = "UTC"
    starts_at_ms: int = 0
    version: str = ""
    default_region: str = ""
