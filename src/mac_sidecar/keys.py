"""The Redis key schema: every key of the service is built here.

Redis Cluster hashes only the part of a key inside the first ``{...}``, so every key of one
workspace carries ``{workspace_id}`` and lands in one slot: each Lua script touches one slot,
and the same scripts run unchanged on a single Redis, Sentinel or Cluster. Workspace ids are
restricted to ``[A-Za-z0-9._-]``, so they can never contain a brace themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "mac"


@dataclass(frozen=True, slots=True)
class WorkspaceKeys:
    """The keys of one workspace."""

    workspace_id: str

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{{{self.workspace_id}}}"

    def members(self, period_key: str) -> str:
        """SET of the 16-byte keys counted in a period; expires after the retention window."""
        return f"{self._base}:members:{period_key}"

    @property
    def counts(self) -> str:
        """HASH ``period_key -> active`` and ``period_key:limit -> limit``; the history."""
        return f"{self._base}:counts"
