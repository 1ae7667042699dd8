"""Redis outages: known contacts served from the local record in every failure mode, new ones
journaled in allow mode and counted once Redis is back, even after a ``kill -9``."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.outages import stop_keeping_data
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory

pytestmark = pytest.mark.timeout(60)


def contact(n: int) -> pb.Contact:
    return pb.Contact(email=f"c{n}@example.com")


def activate(n: int) -> pb.ActivateRequest:
    return pb.ActivateRequest(workspace_id="acme", contact=contact(n))


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, to stop and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def outage_sidecars(make_sidecar: SidecarFactory, own_redis: RedisServer) -> SidecarFactory:
    make_sidecar.settings = make_sidecar.settings.replace(
        redis_url=own_redis.url, redis_timeout=0.2, health_interval=0.05
    )
    return make_sidecar


def files(directory: Path) -> list[str]:
    """The names in ``directory``."""
    return sorted(os.listdir(directory))


def copy_with_a_torn_line(segments: Path, into: Path) -> None:
    """Copy the journal's segments, and end the first with a line torn mid-write."""
    into.mkdir()
    for name in files(segments):
        shutil.copy(segments / name, into / name)
    with open(into / files(into)[0], "ab") as torn:
        torn.write(b'0badc0de {"w":"acme","t":17')


async def wait_until(condition: object, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_deny_mode_serves_known_contacts_and_denies_new_ones(
    outage_sidecars: SidecarFactory, own_redis: RedisServer
) -> None:
    stub = await outage_sidecars(failure_mode="deny")
    ana = pb.Contact(email="ana@example.com", phone="+4915112345678")
    first = await stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=ana))
    assert first.reason == pb.REASON_ADMITTED
    assert not first.from_local_record
    stop_keeping_data(own_redis)
    # by the phone she came with: the record knows every key of hers
    by_phone = pb.Contact(phone="+4915112345678", channel="whatsapp")
    for request in (ana, by_phone):
        known = await stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=request))
        assert (known.allowed, known.reason, known.from_local_record) == (
            True,
            pb.REASON_ALREADY_ACTIVE,
            True,
        )
        assert known.contact_key == first.contact_key
        assert not known.HasField("usage")
    new = await stub.Activate(activate(1))
    assert (new.allowed, new.reason, new.from_local_record) == (
        False,
        pb.REASON_BACKEND_UNAVAILABLE,
        False,
    )
    batch = await stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=[ana, contact(2)])
    )
    assert [(d.allowed, d.reason) for d in batch.decisions] == [
        (True, pb.REASON_ALREADY_ACTIVE),
        (False, pb.REASON_BACKEND_UNAVAILABLE),
    ]


async def test_error_mode_serves_known_contacts_and_fails_new_ones(
    outage_sidecars: SidecarFactory, own_redis: RedisServer
) -> None:
    stub = await outage_sidecars(failure_mode="error")
    assert (await stub.Activate(activate(0))).reason == pb.REASON_ADMITTED
    stop_keeping_data(own_redis)
    known = await stub.Activate(activate(0))
    assert (known.allowed, known.reason, known.from_local_record) == (
        True,
        pb.REASON_ALREADY_ACTIVE,
        True,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Activate(activate(1))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_allow_mode_journals_with_group_commit_and_counts_when_redis_is_back(
    outage_sidecars: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> None:
    stub = await outage_sidecars(
        failure_mode="allow", journal_dir=str(tmp_path), default_limit=1000
    )
    journal = outage_sidecars.last.journal
    assert journal is not None
    assert (await stub.Activate(activate(0))).reason == pb.REASON_ADMITTED
    stop_keeping_data(own_redis)
    calls = 200
    decisions = await asyncio.gather(*(stub.Activate(activate(n)) for n in range(1, calls + 1)))
    assert {(d.allowed, d.reason) for d in decisions} == {(True, pb.REASON_BACKEND_UNAVAILABLE)}
    assert journal.pending == calls
    # one fsync per loop turn for every admission queued in it: concurrent calls whose Redis
    # errors arrive in the same turns share their writes
    assert 1 <= journal.syncs < calls, journal.syncs
    syncs = journal.syncs
    batch = await stub.ActivateBatch(
        pb.ActivateBatchRequest(
            workspace_id="acme", contacts=[contact(n) for n in range(1000, 1100)]
        )
    )
    assert {(d.allowed, d.reason) for d in batch.decisions} == {
        (True, pb.REASON_BACKEND_UNAVAILABLE)
    }
    assert journal.syncs == syncs + 1  # a hundred admissions of one turn: one fsync
    own_redis.start()
    await wait_until(lambda: journal.pending == 0)
    check = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact(0)))
    assert check.usage.active == calls + 100 + 1
    assert files(tmp_path) == []


async def test_contacts_over_the_limit_the_outage_let_in_are_overshoot_not_counted(
    outage_sidecars: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> None:
    stub = await outage_sidecars(failure_mode="allow", journal_dir=str(tmp_path), default_limit=3)
    journal = outage_sidecars.last.journal
    assert journal is not None
    before = REGISTRY.get_sample_value("mac_journal_overshoot_total") or 0
    assert (await stub.Activate(activate(0))).reason == pb.REASON_ADMITTED
    stop_keeping_data(own_redis)
    for n in range(1, 6):
        assert (await stub.Activate(activate(n))).allowed
    own_redis.start()
    await wait_until(lambda: journal.pending == 0)
    check = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact(0)))
    assert check.usage.active == 3  # the limit holds in Redis
    assert REGISTRY.get_sample_value("mac_journal_overshoot_total") == before + 3


async def test_a_full_journal_denies_new_contacts(
    outage_sidecars: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> None:
    stub = await outage_sidecars(
        failure_mode="allow", journal_dir=str(tmp_path), journal_max_entries=3
    )
    stop_keeping_data(own_redis)
    decisions = [await stub.Activate(activate(n)) for n in range(5)]
    assert [(d.allowed, d.reason) for d in decisions] == [
        (True, pb.REASON_BACKEND_UNAVAILABLE)
    ] * 3 + [(False, pb.REASON_BACKEND_UNAVAILABLE)] * 2
    # a contact journaled already is allowed again without a second entry
    again = await stub.Activate(activate(0))
    assert again.allowed
    assert outage_sidecars.last.journal is not None
    assert outage_sidecars.last.journal.pending == 3


@pytest.mark.usefixtures("engine_env")
async def test_kill_9_during_an_outage_loses_no_allowed_contact(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    env = {
        "MAC_FAILURE_MODE": "allow",
        "MAC_JOURNAL_DIR": str(journal_dir),
        "MAC_REDIS_TIMEOUT": "0.2",
        "MAC_HEALTH_INTERVAL": "0.1",
        "MAC_DEFAULT_LIMIT": "1000",
    }
    first = SidecarProcess(own_redis.url, **env)
    first.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)
            for n in range(5):
                assert (await stub.Activate(activate(n))).reason == pb.REASON_ADMITTED
            stop_keeping_data(own_redis)
            allowed = await asyncio.gather(*(stub.Activate(activate(n)) for n in range(5, 45)))
            assert all(d.allowed and d.reason == pb.REASON_BACKEND_UNAVAILABLE for d in allowed)
            known = await stub.Activate(activate(0))
            assert known.from_local_record
        assert first.proc is not None
        first.proc.kill()  # kill -9: no shutdown path runs
        first.proc.wait(10)
    finally:
        first.stop()
    assert files(journal_dir)
    # what a replay cut short between its decisions and the segment's removal leaves, with a
    # line torn by the crash
    interrupted = tmp_path / "copy"
    copy_with_a_torn_line(journal_dir, interrupted)

    own_redis.start()
    second = SidecarProcess(own_redis.url, **env)
    second.start()
    try:
        await wait_until(lambda: not files(journal_dir))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)
            check = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact(0)))
            assert check.usage.active == 45  # every allowed contact counted, once
            for name in files(interrupted):
                shutil.copy(interrupted / name, journal_dir / name)
            await wait_until(lambda: not files(journal_dir))
            check = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact(0)))
            assert check.usage.active == 45  # the replay run again changed nothing
    finally:
        second.stop()
    assert any("journal lines skipped as damaged" in line for line in second.lines)
