"""Replay a synthetic month of omnichannel conversations through a running MAC sidecar.

    python examples/simulate.py --addr 127.0.0.1:50051 --workspace sim --contacts 300 --seed 7

A population of people writes in on livechat, WhatsApp, SMS and email. Some are reachable on
several channels with overlapping identifiers: customers whose CRM id, email and phone arrive
together on a logged-in livechat but one at a time on other channels, WhatsApp users known
first by their business-scoped user id (BSUID) alone and later by their phone too, livechat
visitors who give their email in a later conversation. Many write again during the month.
Every conversation goes through the sidecar as a routing service should call it:

- an inbound message: ``Check`` (may this conversation be queued for an agent?);
- the first agent reply: ``Activate`` (the moment the contact becomes active); every later
  message of the conversation: ``Activate`` again (``REASON_ALREADY_ACTIVE``, counted once);
- some visitors leave before an agent replies: ``Check`` only, never counted;
- some conversations are started by an agent: ``Check`` before offering it, ``Activate`` at the
  first send;
- one email campaign: ``ActivateBatch`` for its whole audience first, then a send to the
  allowed recipients only.

"A month" is a sequence of events, not real days: the sidecar decides the billing period from
its own wall clock, and this script does not control time. Every call lands in the sidecar's
current period (``--month`` only checks which one that is). The run is deterministic for a
given ``--seed`` and population size, and bounded: about five calls per person (under 2,000
with the 300 people of the example).

At the end it prints a MAC report: conversations, people simulated, contacts counted (the
sidecar's own usage), denials by reason, the channel of each counted contact's first counted
conversation (tracked here: the API has no per-channel figure), visitors merged, identity
conflicts, whether a fair-usage trial started, and the final usage line. ``--json`` prints
the report as JSON. With ``--token`` (or ``MAC_ADMIN_TOKEN``) the final usage is read with
``Admin.GetUsage`` and the contact keys this run counted are checked against
``Admin.ListActiveContacts``.

Errors from the sidecar print one line on stderr and exit 2. Run it against a workspace of its
own: contacts counted there earlier in the period are reported as counted before the run, but
the per-channel figures cover only this run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc

from sidecar.client import Client, Decision, Usage

CHANNELS = ("livechat", "whatsapp", "sms", "email")
COUNTED = frozenset({"REASON_ADMITTED", "REASON_TRIAL_STARTED"})
MINUTES = 30 * 24 * 60  # the synthetic month: an order of events, not a span of time
PROBE = {"id": "mac-simulate-usage-probe"}  # only ever Checked: never counted
EXIT_ERROR = 2

Contact = dict[str, str]

# profile -> weight in the population
PROFILES = {
    "visitor": 20,  # anonymous livechat visitor, never identified
    "visitor_email": 14,  # anonymous on livechat first, gives an email later
    "whatsapp_bsuid": 14,  # WhatsApp BSUID alone at first, the phone known later
    "whatsapp": 10,  # WhatsApp with phone and BSUID
    "sms": 8,
    "email": 8,
    "customer": 16,  # CRM id, email and phone; several channels
    "lead": 10,  # only on the campaign's list; some reply by email
}
FIRST = ("ana", "bruno", "carla", "diego", "elif", "farah", "gabriel", "hana", "ivo", "jana")
LAST = ("silva", "meyer", "santos", "kowalski", "nguyen", "okafor", "rossi", "tanaka")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")


# -- the population ------------------------------------------------------------------------


@dataclass
class Person:
    """One human being; which identifiers reach the sidecar depends on the channel."""

    index: int
    profile: str
    crm_id: str = ""
    email: str = ""  # as the CRM keeps it
    email_typed: str = ""  # as the person types it
    phone: str = ""  # E.164
    phone_typed: str = ""  # with the separators people write
    livechat_token: str = ""
    bsuid: str = ""  # WhatsApp business-scoped user id, like "BR.13491208655302741918"


@dataclass
class Conversation:
    """One conversation: its first event (Check), the reply (Activate) and later messages."""

    person: Person
    channel: str
    kind: str  # "inbound", "abandoned" (no reply ever), "agent" (started by an agent)
    first: Contact  # what the inbound message (or the offer to start one) carries
    reply: Contact  # what the platform knows by the first reply
    start: int
    reply_at: int
    later: list[int] = field(default_factory=list)
    campaign_reply: bool = False  # exists only when the person was sent the campaign
    state: str = "open"  # "open", "denied", "served"
    conflict: bool = False


@dataclass
class Campaign:
    at: int
    recipients: list[tuple[Person, Contact]]


def _people(rng: random.Random, count: int) -> list[Person]:
    names = list(PROFILES)
    weights = list(PROFILES.values())
    numbers = rng.sample(range(10_000_000, 100_000_000), count)
    people = []
    for i in range(count):
        profile = rng.choices(names, weights)[0]
        first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
        digits = f"{numbers[i]:08d}"
        if rng.random() < 0.6:
            country = "BR"
            phone, typed = f"+55119{digits}", f"+55 11 9{digits[:4]}-{digits[4:]}"
        else:
            country = "DE"
            phone, typed = f"+49151{digits}", f"0049 151 {digits[:4]} {digits[4:]}"
        people.append(
            Person(
                index=i,
                profile=profile,
                crm_id=f"crm-{100_000 + i}" if profile in ("customer", "lead") else "",
                email=f"{first}.{last}{i}@{domain}",
                email_typed=f"{first.title()}.{last.title()}{i}@{domain.title()}",
                phone=phone,
                phone_typed=typed,
                livechat_token=f"lc-{i:05d}-{rng.getrandbits(40):010x}",
                bsuid=f"{country}.{i:05d}{rng.getrandbits(48):015d}",
            )
        )
    return people


def _visitor(p: Person) -> Contact:
    return {"channel": "livechat", "visitor_id": p.livechat_token}


def _contacts(p: Person, j: int, n: int, rng: random.Random) -> tuple[str, Contact, Contact]:
    """Channel, first contact and reply contact of a person's conversation j of n."""
    sms = {"channel": "sms", "phone": p.phone_typed}
    email = {"channel": "email", "email": p.email_typed}
    wa_bsuid = {"channel": "whatsapp", "visitor_id": p.bsuid}
    wa = {**wa_bsuid, "phone": p.phone}
    if p.profile == "visitor":
        return "livechat", _visitor(p), _visitor(p)
    if p.profile == "visitor_email":
        if j == 0:
            # a single conversation: the email is asked for before the agent replies
            reply = {**_visitor(p), "email": p.email_typed} if n == 1 else _visitor(p)
            return "livechat", _visitor(p), reply
        known = {**_visitor(p), "email": p.email_typed}  # the pre-chat form this time
        return "livechat", known, known
    if p.profile == "whatsapp_bsuid":
        if j == 0:
            return "whatsapp", wa_bsuid, wa_bsuid
        if j == 1 and p.index % 3 == 0:
            return "sms", sms, sms  # the same person texts: counted apart until linked
        return "whatsapp", wa, wa
    if p.profile == "whatsapp":
        return "whatsapp", wa, wa
    if p.profile == "sms":
        return "sms", sms, sms
    if p.profile == "email":
        return "email", email, email
    # customer: the platform sends everything it knows only on a logged-in livechat
    login = {**_visitor(p), "id": p.crm_id, "email": p.email, "phone": p.phone}
    if j == 0 and rng.random() < 0.6:
        return "livechat", login, login
    channel = rng.choice(CHANNELS)
    by_channel = {"livechat": login, "whatsapp": wa, "sms": sms, "email": email}
    return channel, by_channel[channel], by_channel[channel]


def _conversation(
    rng: random.Random, p: Person, channel: str, first: Contact, reply: Contact, start: int
) -> Conversation:
    kind = "inbound"
    if channel in ("whatsapp", "sms") and p.profile in ("customer", "whatsapp", "sms"):
        kind = "agent" if rng.random() < 0.12 else kind
    if kind == "inbound" and rng.random() < 0.12:
        kind = "abandoned"
    reply_at = start + (1 if kind == "agent" else rng.randrange(1, 45))
    later = sorted(reply_at + rng.randrange(2, 240) for _ in range(rng.choice((0, 1, 1, 2))))
    return Conversation(p, channel, kind, first, reply, start, reply_at, later)


def build_month(seed: int, count: int) -> tuple[list[Person], list[Conversation], Campaign]:
    """The population, its conversations and the campaign, from the seed alone."""
    rng = random.Random(seed)
    people = _people(rng, count)
    conversations: list[Conversation] = []
    campaign = Campaign(at=15 * 24 * 60 + 10 * 60, recipients=[])
    for p in people:
        if p.profile == "lead":
            if rng.random() < 0.3:  # writes back to the campaign
                start = campaign.at + rng.randrange(30, 3 * 24 * 60)
                contact = {"channel": "email", "email": p.email_typed}
                conv = _conversation(rng, p, "email", contact, contact, start)
                conv.kind, conv.campaign_reply = "inbound", True
                conversations.append(conv)
            continue
        n = rng.choices((1, 2, 3, 4), (50, 30, 14, 6))[0]
        for j, start in enumerate(sorted(rng.randrange(MINUTES - 300) for _ in range(n))):
            channel, first, reply = _contacts(p, j, n, rng)
            conversations.append(_conversation(rng, p, channel, first, reply, start))
    # the campaign's list, customers first: at the limit, earlier recipients are admitted first
    customers = [p for p in people if p.profile == "customer"]
    subscribers = [p for p in people if p.profile == "email" and rng.random() < 0.5]
    leads = [p for p in people if p.profile == "lead"]
    for p in customers + subscribers + leads:
        contact = {"channel": "email", "email": p.email}
        if p.crm_id:
            contact["id"] = p.crm_id
        campaign.recipients.append((p, contact))
    return people, conversations, campaign


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What this run counted, by contact key: when and on which channel it was first counted.
    Mirrors the sidecar's count: admissions add a key, a merged visitor's key moves to the
    identity it turned out to be."""

    first: dict[str, tuple[int, str]] = field(default_factory=dict)
    visitor_keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def note(self, contact: Contact, decision: Decision, step: int, channel: str) -> None:
        key = decision.contact_key
        visitor = (contact.get("channel", ""), contact.get("visitor_id", ""))
        primary = any(contact.get(f) for f in ("id", "email", "phone"))
        if decision.visitor_merged and visitor[1]:
            old = self.visitor_keys.get(visitor)
            moved = self.first.pop(old, None) if old and old != key else None
            if moved is not None:
                mine = self.first.get(key)
                self.first[key] = min(moved, mine) if mine else moved
        elif decision.reason in COUNTED and key:
            self.first.setdefault(key, (step, channel))
        if visitor[1] and key and (not primary or decision.visitor_merged):
            self.visitor_keys[visitor] = key

    def by_channel(self) -> dict[str, int]:
        found = Counter(channel for _, channel in self.first.values())
        return {c: found[c] for c in (*CHANNELS, *sorted(set(found) - set(CHANNELS)))}


@dataclass
class Run:
    """The figures of one run."""

    client: Client
    workspace: str
    verbose: bool = False
    calls: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    denied_at: Counter[str] = field(default_factory=Counter)
    ledger: Ledger = field(default_factory=Ledger)
    served: set[int] = field(default_factory=set)
    merged: int = 0
    conflicts: int = 0
    shadow: int = 0
    trial_seen: bool = False
    step: int = 0

    def _seen(self, decision: Decision, where: str, contact: Contact) -> None:
        self.step += 1
        if decision.reason == "REASON_TRIAL_STARTED":
            self.trial_seen = True
        if decision.shadow_denied:
            self.shadow += 1
        if not decision.allowed:
            self.denied[decision.reason] += 1
            self.denied_at[where] += 1
        if self.verbose:
            who = " ".join(f"{k}={v}" for k, v in sorted(contact.items()))
            print(f"{self.step:5d} {where:8s} {who} -> {decision.reason}", file=sys.stderr)

    def check(self, contact: Contact) -> Decision:
        self.calls["Check"] += 1
        decision = self.client.check(self.workspace, contact)
        self._seen(decision, "check", contact)
        return decision

    def activate(self, conv: Conversation) -> Decision:
        self.calls["Activate"] += 1
        decision = self.client.activate(self.workspace, conv.reply)
        self._seen(decision, "activate", conv.reply)
        self._counted(conv.person, conv.reply, decision, conv.channel)
        if decision.identity_conflict and not conv.conflict:
            conv.conflict = True
            self.conflicts += 1
        return decision

    def batch(self, recipients: Sequence[tuple[Person, Contact]], size: int) -> list[Person]:
        """ActivateBatch over the whole audience, in order; the people it allows."""
        allowed = []
        for start in range(0, len(recipients), size):
            chunk = recipients[start : start + size]
            self.calls["ActivateBatch"] += 1
            result = self.client.activate_batch(self.workspace, [c for _, c in chunk])
            for (person, contact), decision in zip(chunk, result.decisions, strict=True):
                self._seen(decision, "campaign", contact)
                self._counted(person, contact, decision, "email")
                self.conflicts += decision.identity_conflict
                if decision.allowed:
                    allowed.append(person)
        return allowed

    def _counted(self, person: Person, contact: Contact, decision: Decision, channel: str) -> None:
        self.ledger.note(contact, decision, self.step, channel)
        self.merged += decision.visitor_merged
        if decision.allowed:
            self.served.add(person.index)


def _events(conversations: list[Conversation], campaign: Campaign) -> Iterator[tuple[str, Any]]:
    """Every event of the month in order: (what, conversation or campaign)."""
    timeline: list[tuple[int, int, str, Any]] = [(campaign.at, 0, "campaign", campaign)]
    for conv in conversations:
        timeline.append((conv.start, len(timeline), "open", conv))
        if conv.kind != "abandoned":
            timeline.append((conv.reply_at, len(timeline), "reply", conv))
            timeline.extend((at, len(timeline), "later", conv) for at in conv.later)
    for _, _, what, item in sorted(timeline, key=lambda e: (e[0], e[1])):
        yield what, item


def simulate(run: Run, conversations: list[Conversation], campaign: Campaign, size: int) -> int:
    """Replay the month; answers the campaign's number of sends."""
    sent: set[int] = set()
    for what, item in _events(conversations, campaign):
        if what == "campaign":
            sent = {p.index for p in run.batch(item.recipients, size)}
            continue
        conv: Conversation = item
        if conv.campaign_reply and conv.person.index not in sent:
            conv.state = "never"  # only someone who got the campaign can answer it
            continue
        if what == "open":
            # an inbound message, or an agent about to start one: may it go to an agent?
            contact = conv.reply if conv.kind == "agent" else conv.first
            if not run.check(contact).allowed:
                conv.state = "denied"  # the visitor gets the neutral message, no agent
        elif conv.state != "denied":
            # the first reply counts the contact; later messages are Activated again
            decision = run.activate(conv)
            if not decision.allowed:
                conv.state = "denied"
            elif conv.state == "open":
                conv.state = "served"
    return len(sent)


# -- the report ------------------------------------------------------------------------------


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _usage_of(message: Any) -> Usage:
    """``Usage`` of a ``mac.v1.Usage`` message (as ``Admin.GetUsage`` answers it)."""
    return Usage(
        period=message.period,
        period_start=message.period_start.ToDatetime(tzinfo=UTC),
        period_end=message.period_end.ToDatetime(tzinfo=UTC),
        active=message.active,
        limit=message.limit,
        remaining=message.remaining,
        plan=message.plan,
        trial_ends_at=message.trial_ends_at.ToDatetime(tzinfo=UTC)
        if message.HasField("trial_ends_at")
        else None,
    )


def _usage_dict(u: Usage) -> dict[str, Any]:
    return {
        "period": u.period,
        "period_start": _iso(u.period_start),
        "period_end": _iso(u.period_end),
        "active": u.active,
        "limit": u.limit,
        "remaining": u.remaining,
        "plan": u.plan,
        "trial_ends_at": _iso(u.trial_ends_at),
    }


def _probe(client: Client, workspace: str) -> Usage:
    """The workspace's usage, by a Check that changes nothing."""
    decision = client.check(workspace, PROBE)
    if decision.usage is None:
        raise SimulationError(f"the sidecar answered {decision.reason} without usage")
    return decision.usage


def _verify(client: Client, workspace: str, keys: set[str]) -> dict[str, int]:
    """The run's counted keys against the period's listing."""
    listed: set[str] = set()
    token = ""
    while True:
        page = client.list_active_contacts(workspace, page_token=token, page_size=1000)
        listed.update(page.contact_keys)
        token = page.next_page_token
        if not token:
            break
    return {"listed": len(listed), "counted_by_run": len(keys), "missing": len(keys - listed)}


def report(
    args: argparse.Namespace,
    run: Run,
    people: list[Person],
    conversations: list[Conversation],
    campaign: Campaign,
    sends: int,
    before: Usage,
    after: Usage,
    verified: dict[str, int] | None,
) -> dict[str, Any]:
    held = [c for c in conversations if c.state != "never"]
    states = Counter(c.state for c in held)
    by_channel = run.ledger.by_channel()
    return {
        "workspace": args.workspace,
        "seed": args.seed,
        "period": after.period,
        "conversations": {
            "total": len(held),
            "served": states["served"],
            "denied": states["denied"],
            "abandoned": sum(c.kind == "abandoned" and c.state == "open" for c in held),
            "started_by_agent": sum(c.kind == "agent" for c in held),
        },
        "campaign": {
            "channel": "email",
            "audience": len(campaign.recipients),
            "sent": sends,
            "not_sent": len(campaign.recipients) - sends,
        },
        "people": len(people),
        "people_served": len(run.served),
        "counted": after.active,
        "counted_before_run": before.active,
        "by_channel": by_channel,
        "denied": dict(sorted(run.denied.items())),
        "denied_at": dict(sorted(run.denied_at.items())),
        "limit_reached": "REASON_LIMIT_REACHED" in run.denied or run.shadow > 0,
        "shadow_denied": run.shadow,
        "visitors_merged": run.merged,
        "identity_conflicts": run.conflicts,
        "trial": {
            "started": run.trial_seen,
            "running": after.trial_ends_at is not None,
            "ends_at": _iso(after.trial_ends_at),
        },
        "calls": dict(sorted(run.calls.items())),
        "usage": _usage_dict(after),
        "verified": verified,
    }


def _n(value: int) -> str:
    return f"{value:,}"


def _when(text: str | None) -> str:
    return (text or "")[:16].replace("T", " ") + " UTC"


def text(r: dict[str, Any]) -> str:
    c, camp, u, trial = r["conversations"], r["campaign"], r["usage"], r["trial"]
    channels = ", ".join(f"{k} {_n(v)}" for k, v in r["by_channel"].items())
    attributed = sum(r["by_channel"].values())
    counted = f"{_n(r['counted'])}"
    if r["counted_before_run"]:
        counted += f"  ({_n(r['counted_before_run'])} before this run)"
    if r["denied"]:
        places = ", ".join(f"{k} {_n(v)}" for k, v in r["denied_at"].items())
        reasons = ", ".join(f"{k.removeprefix('REASON_')} {_n(v)}" for k, v in r["denied"].items())
        denied = f"{reasons}  ({places})"
    else:
        denied = "none"
    if trial["started"]:
        trial_line = f"started in this run, ends {_when(trial['ends_at'])}"
    elif trial["running"]:
        trial_line = f"running (started before this run), ends {_when(trial['ends_at'])}"
    else:
        trial_line = "none"
    trial_limit = " (the trial's limit)" if trial["running"] else ""
    calls = ", ".join(f"{k} {_n(v)}" for k, v in r["calls"].items())
    lines = [
        f"MAC simulation: workspace {r['workspace']}, seed {r['seed']}, period {r['period']}",
        f"conversations       {_n(c['total'])}  ({_n(c['served'])} served, "
        f"{_n(c['denied'])} denied, {_n(c['abandoned'])} abandoned before a reply; "
        f"{_n(c['started_by_agent'])} started by an agent)",
        f"campaign            {camp['channel']} to {_n(camp['audience'])}: "
        f"{_n(camp['sent'])} sent, {_n(camp['not_sent'])} not sent",
        f"people simulated    {_n(r['people'])}  ({_n(r['people_served'])} served at least once)",
        f"contacts counted    {counted}",
        f"by first channel    {channels}",
        f"denied              {denied}",
        f"visitors merged     {_n(r['visitors_merged'])}",
        f"identity conflicts  {_n(r['identity_conflicts'])}",
        f"fair-usage trial    {trial_line}",
        f"usage               {_n(u['active'])} active of {_n(u['limit'])}{trial_limit}, "
        f"{_n(u['remaining'])} remaining, plan {u['plan']}, period {u['period']} "
        f"({_when(u['period_start'])} to {_when(u['period_end'])})",
        f"calls               {calls}",
    ]
    if r["shadow_denied"]:
        lines.insert(7, f"shadow denied       {_n(r['shadow_denied'])} (allowed by shadow mode)")
    if attributed != r["counted"] - r["counted_before_run"]:
        lines.append(
            f"note: {_n(attributed)} contacts attributed to a channel, "
            f"{_n(r['counted'] - r['counted_before_run'])} counted during the run "
            "(was another caller using the workspace?)"
        )
    if r["verified"] is not None:
        v = r["verified"]
        lines.append(
            f"verified            {_n(v['counted_by_run'])} keys counted by this run, "
            f"{_n(v['missing'])} missing from the {_n(v['listed'])} the sidecar lists"
        )
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------


class SimulationError(Exception):
    """A condition that stops the run, reported in one line."""


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM like 2026-11 (got {value!r})")
    return value


def _contacts_arg(value: str) -> int:
    number = int(value) if value.isdigit() else 0
    if not 1 <= number <= 5000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 5000 (got {value!r})")
    return number


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="simulate.py",
        description="Replay a synthetic month of conversations through a running MAC sidecar.",
    )
    parser.add_argument("--addr", default=os.environ.get("MAC_GRPC_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--workspace", default="sim", help="workspace id (default %(default)s)")
    parser.add_argument(
        "--contacts", type=_contacts_arg, default=300, help="people to simulate (1-5000)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--token",
        default=os.environ.get("MAC_ADMIN_TOKEN", ""),
        help="admin token: read the final usage with Admin.GetUsage and verify the counted "
        "keys [MAC_ADMIN_TOKEN]",
    )
    parser.add_argument(
        "--month",
        type=_month,
        help="refuse to run unless the sidecar's current period is this one (YYYY-MM); the "
        "sidecar's own clock decides the period",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="contacts per ActivateBatch call, at most the sidecar's MAC_BATCH_MAX",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verbose", action="store_true", help="print every decision on stderr")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def execute(args: argparse.Namespace) -> dict[str, Any]:
    people, conversations, campaign = build_month(args.seed, args.contacts)
    with Client(args.addr, deadline=args.timeout, token=args.token) as client:
        before = _probe(client, args.workspace)
        if args.month and before.period != args.month:
            raise SimulationError(
                f"the sidecar's current period for {args.workspace} is {before.period}, not "
                f"{args.month} (the sidecar's clock decides the period)"
            )
        if args.token:
            client.get_usage(args.workspace)  # a wrong token fails here, before anything counts
        run = Run(client, args.workspace, verbose=args.verbose)
        sends = simulate(run, conversations, campaign, args.batch_size)
        after = _probe(client, args.workspace)
        verified = None
        if args.token:
            after = _usage_of(client.get_usage(args.workspace).usage)
            verified = _verify(client, args.workspace, set(run.ledger.first))
        return report(args, run, people, conversations, campaign, sends, before, after, verified)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = execute(args)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        details = exc.details() or ""
        if code is grpc.StatusCode.UNAVAILABLE and "backend" not in details:
            print(f"error: cannot reach the sidecar at {args.addr}", file=sys.stderr)
        else:
            hint = "; pass --token or set MAC_ADMIN_TOKEN" if code.name == "UNAUTHENTICATED" else ""
            print(f"error: {code.name}: {details}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except SimulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result, indent=2) if args.json else text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
