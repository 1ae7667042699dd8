"""The identity operations: Merge folds identities into one, SetExempt marks contacts that are
allowed and never counted."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.domain.audit import AuditContext
from sidecar.domain.clock import Clock, to_ms
from sidecar.domain.contact import ContactFields, key_text, validate_workspace_id
from sidecar.domain.decision import Merged, Usage
from sidecar.domain.ports import ExemptRequest, IdentityStore, MergeRequest
from sidecar.usecases.contacts import ContactReader, has_national_phone
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.periods import Periods


class Identities:
    """Merges and exemptions.

    :param store: where links and exemptions live.
    :param enforcer: for the usage a merge leaves.
    """

    def __init__(
        self,
        store: IdentityStore,
        contacts: ContactReader,
        periods: Periods,
        enforcer: Enforcer,
        clock: Clock,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._periods = periods
        self._enforcer = enforcer
        self._clock = clock

    async def merge(
        self,
        workspace_id: str,
        sources: Sequence[ContactFields],
        target: ContactFields,
        *,
        admin: str,
    ) -> tuple[Merged, Usage]:
        """Fold the sources' identities into the target's; the current period's count drops
        by the folded identities that were counted beside the survivor. Idempotent. Audited
        as by ``admin``.

        :return: what the merge did, and the usage after it.
        """
        validate_workspace_id(workspace_id)
        self._contacts.check_count(sources, "sources")
        await self._periods.ensure_subscribed(workspace_id)
        await self._periods.refresh(workspace_id)
        region = self._periods.basis(workspace_id).default_region
        keyed_target = self._contacts.one(target, "target", region)
        keyed_sources = self._contacts.many(sources, "sources", region)
        now = self._clock.now()
        current = self._periods.current(workspace_id, now)
        merged = await self._store.merge(
            MergeRequest(
                workspace_id=workspace_id,
                period_key=current.period.key,
                expire_at_ms=current.expire_at_ms,
                target=keyed_target,
                sources=keyed_sources,
                audit=AuditContext(admin, "Merge", to_ms(now)),
            )
        )
        self._enforcer.forget(workspace_id)
        return merged, await self._enforcer.usage(workspace_id)

    async def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactFields], exempt: bool, *, admin: str
    ) -> list[str]:
        """Exempt contacts (allowed, never counted) or make them countable again; return
        their identity keys in order. Audited as by ``admin``."""
        validate_workspace_id(workspace_id)
        self._contacts.check_count(contacts, "contacts")
        await self._periods.ensure_subscribed(workspace_id)
        if has_national_phone(contacts) and not self._periods.basis(workspace_id).default_region:
            await self._periods.refresh(workspace_id)
        region = self._periods.basis(workspace_id).default_region
        keyed = self._contacts.many(contacts, "contacts", region)
        audit = AuditContext(admin, "SetExempt", to_ms(self._clock.now()))
        reply = await self._store.set_exempt(ExemptRequest(workspace_id, keyed, exempt, audit))
        self._enforcer.forget(workspace_id)
        return [key_text(k) for k in reply.identities]
