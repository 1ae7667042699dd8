"""MAC_GRPC_UDS: calls over a Unix domain socket, beside TCP, and the socket file's life."""

from __future__ import annotations

import asyncio
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from sidecar.client import AsyncClient
from sidecar.domain.clock import ManualClock
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.commands import cli


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # short: a socket's path is limited to about 100 bytes, pytest's tmp_path may be longer
    with tempfile.TemporaryDirectory(prefix="mac-uds-") as directory:
        yield Path(directory)


async def started(settings: Settings, clock: ManualClock, path: Path) -> Sidecar:
    service = Sidecar(settings.replace(grpc_uds=str(path)), clock)
    await service.start()
    return service


async def test_the_client_and_the_cli_call_over_the_socket_beside_tcp(
    settings: Settings, clock: ManualClock, socket_dir: Path
) -> None:
    path = socket_dir / "run" / "mac.sock"  # the directory is created
    service = await started(settings, clock, path)
    try:
        assert path.is_socket()
        assert stat.S_IMODE(path.stat().st_mode) == 0o666  # any container's user may connect
        async with AsyncClient(f"unix:{path}") as mac:
            admitted = await mac.activate("acme", email="ana@example.com")
            streamed = [
                r
                async for r in mac.activate_stream(
                    [
                        pb.CheckRequest(
                            workspace_id="acme", contact=pb.Contact(email="ana@example.com")
                        )
                    ]
                )
            ]
        assert admitted.reason == "REASON_ADMITTED"
        assert [getattr(r, "reason", None) for r in streamed] == ["REASON_ALREADY_ACTIVE"]

        code, out, _ = await cli(
            "check", "acme", "--email", "ana@example.com", f"--addr=unix:{path}"
        )
        assert code == 0
        assert "allowed: ALREADY_ACTIVE" in out
        # TCP still answers, from the same process
        async with AsyncClient(f"127.0.0.1:{service.port}") as mac:
            assert (await mac.check("acme", email="ana@example.com")).reason == (
                "REASON_ALREADY_ACTIVE"
            )
    finally:
        await service.stop()
    assert not path.exists()


async def test_a_stale_socket_is_replaced(
    settings: Settings, clock: ManualClock, socket_dir: Path
) -> None:
    path = socket_dir / "mac.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed process leaves
    assert path.is_socket()

    service = await started(settings, clock, path)
    try:
        async with AsyncClient(f"unix:{path}") as mac:
            assert (await mac.activate("acme", id="crm-1")).reason == "REASON_ADMITTED"
    finally:
        await service.stop()
    assert not path.exists()


async def test_a_socket_another_process_listens_on_is_left_alone(
    settings: Settings, clock: ManualClock, socket_dir: Path
) -> None:
    path = socket_dir / "mac.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen()
    try:
        service = Sidecar(settings.replace(grpc_uds=str(path)), clock)
        with pytest.raises(ConfigError, match="another process listens on"):
            await service.start()
        await service.stop()
        assert path.is_socket()
        other.settimeout(0)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))  # still the other process's socket
        client.close()
    finally:
        other.close()


async def test_a_path_that_is_not_a_socket_is_refused(
    settings: Settings, clock: ManualClock, socket_dir: Path
) -> None:
    path = socket_dir / "mac.sock"
    path.write_text("not a socket")
    service = Sidecar(settings.replace(grpc_uds=str(path)), clock)
    with pytest.raises(ConfigError, match="is not a socket"):
        await service.start()
    await service.stop()
    assert path.read_text() == "not a socket"


def test_a_socket_takes_a_single_process(settings: Settings, socket_dir: Path) -> None:
    with pytest.raises(ConfigError, match="MAC_GRPC_UDS takes one process"):
        settings.replace(grpc_uds=str(socket_dir / "mac.sock"), workers=2)


async def test_a_stream_over_the_socket_ends_unavailable_on_stop(
    settings: Settings, clock: ManualClock, socket_dir: Path
) -> None:
    path = socket_dir / "mac.sock"
    service = await started(settings, clock, path)
    never = asyncio.Event()

    async def requests() -> AsyncIterator[pb.ActivateRequest]:
        yield pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id="crm-1"))
        await never.wait()  # the stream stays open: only the stop ends it

    async with AsyncClient(f"unix:{path}") as mac:
        stream = mac.activate_stream(requests())
        first = await anext(stream)
        assert getattr(first, "reason", None) == "REASON_ADMITTED"
        await service.stop()
        with pytest.raises(grpc.RpcError) as ended:
            await anext(stream)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        await stream.aclose()
    assert not path.exists()
