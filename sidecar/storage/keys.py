"""The Redis key schema: every key of the service is built here.

Redis Cluster hashes only the part of a key inside the first ``{...}``, so every key of one
workspace carries ``{workspace_id}`` and lands in one slot: each Lua script touches one slot,
and the same scripts run unchanged on a single Redis, Sentinel or Cluster. Workspace ids are
restricted to ``[A-Za-z0-9._-]``, so they can never contain a brace themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "mac"

# SET of workspace ids that may have events, outside any workspace's slot: read by WatchEvents
# for all workspaces and by the webhook deliverers, written before a workspace's first decision.
REGISTRY = f"{PREFIX}:workspaces"
# STRING: when webhooks were first turned on (unix ms, Redis's clock), the other key outside any
# workspace's slot; events recorded from then on are delivered. Written once (SET NX), read by
# every deliverer at start, always alone (one key, one slot).
WEBHOOKS_SINCE = f"{PREFIX}:webhooks:since"
# The consumer group of the webhook deliverers on every workspace's events stream.
WEBHOOK_GROUP = "webhooks"
# STRING: the process sweeping closed periods now (its name); expires unless renewed. Outside
# any workspace's slot, always used alone.
CLOSE_LEASE = f"{PREFIX}:close:lease"


@dataclass(frozen=True, slots=True)
class WorkspaceKeys:
    """The keys of one workspace."""

    workspace_id: str

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{{{self.workspace_id}}}"

    def members(self, period_key: str) -> str:
        """SET of the 14-byte keys counted in a period; expires after the retention window."""
        return f"{self._base}:members:{period_key}"

    def flags(self, period_key: str) -> str:
        """HASH of the notifications already recorded in a period; expires with its members."""
        return f"{self._base}:flags:{period_key}"

    def usage(self, period_key: str) -> str:
        """HASH of a period's breakdown: ``ch:<channel>`` -> contacts first counted on it,
        ``d:<YYYY-MM-DD>`` -> new contacts counted that day; expires with its members."""
        return f"{self._base}:usage:{period_key}"

    @property
    def counts(self) -> str:
        """HASH ``period_key -> active`` and ``period_key:limit -> limit``; the history."""
        return f"{self._base}:counts"

    @property
    def subscription(self) -> str:
        """HASH of the subscription, its resolved limits and a version."""
        return f"{self._base}:subscription"

    @property
    def trial(self) -> str:
        """HASH of the running or last fair-usage trial and the majors that had one."""
        return f"{self._base}:trial"

    @property
    def links(self) -> str:
        """HASH identifier key -> identity key: who is who across channels and merges."""
        return f"{self._base}:links"

    @property
    def identities(self) -> str:
        """HASH identity key -> its entry: the last period it was counted in and its
        identifiers' keys (``lib/index.lua``); read by Forget and the links sweep."""
        return f"{self._base}:identities"

    @property
    def exempt(self) -> str:
        """SET of exempt identity and identifier keys: allowed, never counted."""
        return f"{self._base}:exempt"

    @property
    def events(self) -> str:
        """STREAM of notification events, trimmed to about ``MAC_EVENTS_MAX`` entries."""
        return f"{self._base}:events"

    @property
    def flood(self) -> str:
        """HASH of the flood guard's sliding minute: ``b:<unix s>`` -> new contacts admitted
        in that second, their ``sum``, the window's ``head`` and ``tail`` seconds, and the last
        flood detected (``ev``: its minute, ``at``: unix ms). Bounded (60 buckets); no expiry."""
        return f"{self._base}:flood"

    @property
    def webhook_lease(self) -> str:
        """STRING: the name of the webhook consumer delivering this workspace's events now;
        expires unless renewed."""
        return f"{self._base}:webhook:lease"

    @property
    def statements(self) -> str:
        """HASH ``period_key`` -> the closed period's statement (JSON, close.lua's); a field
        is written once, when its period closes, and never changed."""
        return f"{self._base}:statements"

    @property
    def audit(self) -> str:
        """STREAM of the audit records of the Admin calls that changed the workspace (lib/
        audit.lua); each entry's id is its instant, trimmed to ``MAC_AUDIT_RETENTION_DAYS``."""
        return f"{self._base}:audit"
