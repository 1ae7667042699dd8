"""Whatever arrives on the open port costs little and leaks nothing: generated requests for
every RPC, undecodable bytes and an 8-million-contact batch, against a sidecar process."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess

# What a caller's request may be answered with; never INTERNAL or UNKNOWN.
EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CODES: Counter[str] = Counter()
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Target:
    """A sidecar process and a channel to it."""

    def __init__(self, process: SidecarProcess) -> None:
        self.process = process
        self.channel = grpc.insecure_channel(f"127.0.0.1:{process.port}")

    def call(self, method: str, request: bytes, timeout: float = 5.0) -> grpc.StatusCode:
        """Send raw request bytes to ``/mac.v1.<method>``; the status code."""
        stub: Any = self.channel.unary_unary(f"/mac.v1.{method}")
        try:
            stub(request, timeout=timeout, metadata=AUTH)
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            details = exc.details() or ""
            assert "DecodeError" not in details
            assert "Traceback" not in details
            return code
        return grpc.StatusCode.OK

    def rss_kib(self) -> int:
        assert self.process.proc is not None
        for line in Path(f"/proc/{self.process.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def serving(self) -> bool:
        request = pb.CheckRequest(workspace_id="acme", contact=pb.Contact(id="probe"))
        return self.call("Enforcer/Check", request.SerializeToString()) is grpc.StatusCode.OK


@pytest.fixture(scope="module")
def target(redis_server: RedisServer, grpc_engine: str) -> Iterator[Target]:
    process = SidecarProcess(
        redis_server.url, MAC_ADMIN_TOKEN=ADMIN_TOKEN, MAC_GRPC_ENGINE=grpc_engine
    )
    process.start()
    found = Target(process)
    try:
        yield found
    finally:
        found.channel.close()
        process.stop()
        errors = [line for line in process.lines if '"level": "error"' in line]
        assert not errors, errors[:3]


text = st.text(max_size=40)
contacts = st.builds(
    pb.Contact,
    id=text,
    email=st.one_of(text, st.emails().map(str)),
    phone=st.one_of(text, st.from_regex(r"\+?[0-9 ()-]{0,20}", fullmatch=True)),
    channel=st.one_of(text, st.sampled_from(["sms", "whatsapp", "LiveChat", " email "])),
    visitor_id=text,
)
workspaces = st.one_of(st.sampled_from(["acme", "fuzz-1"]), text)
timestamps = st.integers(min_value=-(2**40), max_value=2**40)


def subscription_request(**fields: Any) -> admin_pb.SetSubscriptionRequest:
    seconds = fields.pop("starts_at")
    mask = fields.pop("mask")
    request = admin_pb.SetSubscriptionRequest(
        **{name: value for name, value in fields.items() if value is not None}
    )
    if seconds is not None:
        request.starts_at.seconds = seconds
    if mask is not None:
        request.update_mask.paths.extend(mask)
    return request


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


REQUESTS = st.one_of(
    st.tuples(
        st.just("Enforcer/Check"),
        st.builds(pb.CheckRequest, workspace_id=workspaces, contact=contacts),
    ),
    st.tuples(
        st.just("Enforcer/Activate"),
        st.builds(pb.ActivateRequest, workspace_id=workspaces, contact=contacts),
    ),
    st.tuples(
        st.just("Enforcer/ActivateBatch"),
        st.builds(
            pb.ActivateBatchRequest,
            workspace_id=workspaces,
            contacts=st.lists(contacts, max_size=8),
        ),
    ),
    st.tuples(
        st.just("Enforcer/CheckBatch"),
        st.builds(
            pb.CheckBatchRequest,
            workspace_id=workspaces,
            contacts=st.lists(contacts, max_size=8),
        ),
    ),
    st.tuples(
        st.just("Admin/SetSubscription"),
        st.builds(
            subscription_request,
            workspace_id=workspaces,
            plan=maybe(st.one_of(st.sampled_from(["starter", "pro", "enterprise"]), text)),
            packs=maybe(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
            custom_limit=maybe(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            timezone=maybe(
                st.one_of(st.sampled_from(["Europe/Berlin", "localtime", "Factory"]), text)
            ),
            starts_at=st.one_of(st.none(), timestamps),
            platform_version=maybe(text),
            shadow_mode=maybe(st.booleans()),
            default_region=maybe(st.one_of(st.sampled_from(["DE", "br"]), text)),
            thresholds=st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=20),
            mask=maybe(
                st.lists(st.one_of(st.sampled_from(["*", "packs", "plan", "thresholds"]), text))
            ),
        ),
    ),
    st.tuples(
        st.just("Admin/GetSubscription"),
        st.builds(admin_pb.GetSubscriptionRequest, workspace_id=workspaces),
    ),
    st.tuples(
        st.just("Admin/GetUsage"),
        st.builds(
            admin_pb.GetUsageRequest,
            workspace_id=workspaces,
            period=st.one_of(text, st.sampled_from(["2026-11", "1999-01", "٢٠٢٦-١٢"])),
        ),
    ),
    st.tuples(
        st.just("Admin/ListActiveContacts"),
        st.builds(
            admin_pb.ListActiveContactsRequest,
            workspace_id=workspaces,
            period=text,
            page_token=text,
            page_size=st.integers(min_value=-(2**31), max_value=2**31 - 1),
        ),
    ),
    st.tuples(
        st.just("Admin/Merge"),
        st.builds(
            admin_pb.MergeRequest,
            workspace_id=workspaces,
            sources=st.lists(contacts, max_size=4),
            target=contacts,
        ),
    ),
    st.tuples(
        st.just("Admin/SetExempt"),
        st.builds(
            admin_pb.SetExemptRequest,
            workspace_id=workspaces,
            contacts=st.lists(contacts, max_size=4),
            exempt=st.booleans(),
        ),
    ),
)


@FUZZ
@given(REQUESTS)
def test_generated_requests_never_get_internal_or_unknown(
    target: Target, call: tuple[str, Any]
) -> None:
    method, request = call
    code = target.call(method, request.SerializeToString())
    CODES[code.name] += 1
    assert code in EXPECTED, (method, request)


@FUZZ
@given(
    st.sampled_from(
        [
            "Enforcer/Check",
            "Enforcer/ActivateBatch",
            "Enforcer/CheckBatch",
            "Admin/Merge",
            "Admin/GetUsage",
            "Admin/SetSubscription",
        ]
    ),
    st.binary(max_size=200),
)
def test_undecodable_bytes_are_invalid_argument(target: Target, method: str, data: bytes) -> None:
    code = target.call(method, data)
    CODES[code.name] += 1
    assert code in EXPECTED


def test_watching_events_with_any_cursor_is_never_internal(target: Target) -> None:
    for after in ("", "0-0", "yesterday", "1-1-1", "9" * 40, "\x00"):
        request = admin_pb.WatchEventsRequest(workspace_id="acme", after_id=after)
        stream: Any = target.channel.unary_stream("/mac.v1.Admin/WatchEvents")
        code = grpc.StatusCode.OK
        try:
            for _ in stream(request.SerializeToString(), timeout=0.3, metadata=AUTH):
                pass
        except grpc.RpcError as exc:
            code = exc.code()
        assert code in {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INVALID_ARGUMENT}


def test_eight_million_empty_contacts_are_refused_at_once(target: Target) -> None:
    hostile = b"\x0a\x04acme" + b"\x12\x00" * 8_000_000  # 16 MB: 8M empty contacts
    assert target.serving()
    before = target.rss_kib()
    started = time.perf_counter()
    code = target.call("Enforcer/ActivateBatch", hostile, timeout=10)
    elapsed = time.perf_counter() - started
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert target.serving()
    grown = target.rss_kib() - before
    # the message itself arrives (16 MB); nothing of its 8M contacts is built
    assert grown < 64 * 1024, f"grew {grown} KiB"
    print(f"8M-contact batch refused in {elapsed * 1000:.1f} ms, RSS +{grown} KiB")


def test_the_sidecar_still_serves_and_reports_the_tally(target: Target) -> None:
    assert target.serving()
    print("fuzz status codes:", dict(CODES))
