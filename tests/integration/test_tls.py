"""TLS and mTLS on the gRPC listeners, certificates and the admin token read again when their
files change, and the CLI's TLS options; certificates made by the openssl CLI, loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.client import TLS, AsyncClient
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.calls import kinds
from tests.support.certificates import CLIENT_EXT, SERVER_EXT, Pair, issue, make_ca
from tests.support.commands import cli, serve_once
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory

# The native engine serves no TLS (pygrpc-native has none yet): MAC_GRPC_ENGINE=native with
# MAC_TLS_* refuses to start, saying so (test_engines.py).
pytestmark = pytest.mark.grpcio_only("the native engine serves no TLS; it refuses MAC_TLS_*")

CALL = 5.0  # seconds any one call of these tests may take
# a connection of its own for every channel: no subchannel shared with an earlier test's
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@dataclass(frozen=True)
class Pki:
    """Two CAs, each with a server certificate for localhost and 127.0.0.1 and a client
    certificate; and an Admin certificate from the second."""

    ca1: Path
    server1: Pair
    client1: Pair
    ca2: Path
    server2: Pair
    client2: Pair
    admin2: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:  # pragma: no cover - the dev image has it
        pytest.skip("needs the openssl command")
    cwd = tmp_path_factory.mktemp("pki")
    ca1, ca2 = make_ca(cwd, "ca1"), make_ca(cwd, "ca2")
    return Pki(
        ca1=ca1.cert,
        server1=issue(cwd, ca1, "server1", SERVER_EXT),
        client1=issue(cwd, ca1, "client1", CLIENT_EXT),
        ca2=ca2.cert,
        server2=issue(cwd, ca2, "server2", SERVER_EXT),
        client2=issue(cwd, ca2, "client2", CLIENT_EXT),
        admin2=issue(cwd, ca2, "admin2", SERVER_EXT),
    )


def replace(source: Path, target: Path) -> None:
    """Put ``source``'s content at ``target`` the way a rotation does: a new file, then a
    rename over the old one."""
    fresh = target.with_name(target.name + ".new")
    fresh.write_bytes(source.read_bytes())
    os.replace(fresh, target)


@pytest.fixture
def served(pki: Pki, tmp_path: Path) -> Pair:
    """The server certificate the sidecar is given: copies of server1, for a test to
    replace."""
    pair = Pair(tmp_path / "tls.crt", tmp_path / "tls.key")
    replace(pki.server1.cert, pair.cert)
    replace(pki.server1.key, pair.key)
    return pair


def credentials(ca: Path | None, client: Pair | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes() if ca else None,
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    """Channels a test opens, closed at its end."""
    opened: list[grpc.aio.Channel] = []
    yield opened
    for channel in opened:
        await channel.close()


def secure(
    opened: list[grpc.aio.Channel], port: int, ca: Path, client: Pair | None = None
) -> grpc.aio.Channel:
    channel = grpc.aio.secure_channel(
        f"localhost:{port}", credentials(ca, client), options=OWN_CONNECTION
    )
    opened.append(channel)
    return channel


async def healthy(channel: grpc.aio.Channel) -> bool:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=CALL
    )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The status a call on ``channel`` fails with (the handshake is refused)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await healthy(channel)
    return caught.value.code()


async def activate(channel: grpc.aio.Channel, n: int) -> pb.Decision:
    decision: pb.Decision = await pb_grpc.EnforcerStub(channel).Activate(
        pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id=f"crm-{n}")),
        timeout=CALL,
    )
    return decision


async def tls_sidecar(make_sidecar: SidecarFactory, pair: Pair, **changes: object) -> Sidecar:
    await make_sidecar(tls_cert_file=str(pair.cert), tls_key_file=str(pair.key), **changes)
    return make_sidecar.last


# -- TLS -----------------------------------------------------------------------------------


async def test_the_client_and_a_raw_channel_call_over_tls(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served)
    async with AsyncClient(
        f"127.0.0.1:{service.port}", tls=TLS(ca_file=str(pki.ca1)), deadline=CALL
    ) as mac:
        decision = await mac.activate("acme", email="ana@example.com")
    assert decision.allowed
    assert decision.reason == "REASON_ADMITTED"
    # the name checked is server_name, not the address's host
    async with AsyncClient(
        f"127.0.0.1:{service.port}",
        tls=TLS(ca_file=str(pki.ca1), server_name="localhost"),
        deadline=CALL,
        token=ADMIN_TOKEN,
    ) as mac:
        usage = await mac.get_usage("acme")
    assert usage.usage.active == 1

    channel = secure(channels, service.port, pki.ca1)
    assert await healthy(channel)
    assert (await activate(channel, 1)).reason == pb.REASON_ADMITTED


async def test_plaintext_and_untrusting_clients_are_refused(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served)
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}", options=OWN_CONNECTION)
    channels.append(plain)
    assert await refused(plain) is grpc.StatusCode.UNAVAILABLE
    assert await refused(secure(channels, service.port, pki.ca2)) is grpc.StatusCode.UNAVAILABLE
    async with AsyncClient(f"127.0.0.1:{service.port}", deadline=1.0, retries=0) as mac:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mac.activate("acme", id="x")
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_without_a_certificate_it_trusts(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served, tls_client_ca_file=str(pki.ca1))
    assert await refused(secure(channels, service.port, pki.ca1)) is grpc.StatusCode.UNAVAILABLE
    signed_elsewhere = secure(channels, service.port, pki.ca1, pki.client2)
    assert await refused(signed_elsewhere) is grpc.StatusCode.UNAVAILABLE

    assert await healthy(secure(channels, service.port, pki.ca1, pki.client1))
    tls = TLS(str(pki.ca1), str(pki.client1.cert), str(pki.client1.key))
    async with AsyncClient(f"127.0.0.1:{service.port}", tls=tls, deadline=CALL) as mac:
        assert (await mac.activate("acme", id="crm-1")).allowed


# -- rotation --------------------------------------------------------------------------------


async def test_a_rotated_certificate_serves_new_connections_and_keeps_open_ones(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served, default_limit=2)
    old = secure(channels, service.port, pki.ca1)
    stream = admin_grpc.AdminStub(old).WatchEvents(
        admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH
    )
    assert (await activate(old, 1)).reason == pb.REASON_ADMITTED  # the stream's connection
    assert await refused(secure(channels, service.port, pki.ca2)) is grpc.StatusCode.UNAVAILABLE

    replace(pki.server2.cert, served.cert)
    replace(pki.server2.key, served.key)

    new = secure(channels, service.port, pki.ca2)
    assert await healthy(new)
    assert (await activate(new, 2)).reason == pb.REASON_ADMITTED  # 2 of 2: thresholds crossed
    assert await refused(secure(channels, service.port, pki.ca1)) is grpc.StatusCode.UNAVAILABLE
    # the stream opened before the rotation still delivers, and its connection still calls
    events = [await asyncio.wait_for(stream.read(), CALL) for _ in range(2)]
    assert kinds(events) == [("THRESHOLD_CROSSED", 80), ("THRESHOLD_CROSSED", 100)]
    assert (await activate(old, 3)).reason == pb.REASON_LIMIT_REACHED
    event = await asyncio.wait_for(stream.read(), CALL)
    assert kinds([event]) == [("LIMIT_REACHED", 0)]
    stream.cancel()
    assert service.tls is not None
    assert service.tls.enforcer.generation == 1


async def test_half_rotated_files_keep_the_old_certificate_until_both_are_new(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served)
    replace(pki.server2.cert, served.cert)  # the key is still server1's: they do not match
    assert await healthy(secure(channels, service.port, pki.ca1))
    assert await refused(secure(channels, service.port, pki.ca2)) is grpc.StatusCode.UNAVAILABLE
    served.key.write_text("not a key")
    assert await healthy(secure(channels, service.port, pki.ca1))

    replace(pki.server2.key, served.key)
    assert await healthy(secure(channels, service.port, pki.ca2))
    assert await refused(secure(channels, service.port, pki.ca1)) is grpc.StatusCode.UNAVAILABLE


async def test_a_rotated_client_ca_trusts_the_new_clients(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    client_ca = served.cert.with_name("ca.crt")
    replace(pki.ca1, client_ca)
    service = await tls_sidecar(make_sidecar, served, tls_client_ca_file=str(client_ca))
    assert await healthy(secure(channels, service.port, pki.ca1, pki.client1))
    replace(pki.ca2, client_ca)
    assert await healthy(secure(channels, service.port, pki.ca1, pki.client2))
    refusal = await refused(secure(channels, service.port, pki.ca1, pki.client1))
    assert refusal is grpc.StatusCode.UNAVAILABLE


# -- the Admin listener ----------------------------------------------------------------------


async def test_the_admin_listener_serves_its_own_certificate(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(
        make_sidecar,
        served,
        admin_addr="127.0.0.1:0",
        admin_tls_cert_file=str(pki.admin2.cert),
        admin_tls_key_file=str(pki.admin2.key),
    )
    assert service.admin_port != service.port
    admin = secure(channels, service.admin_port, pki.ca2)
    usage = await admin_grpc.AdminStub(admin).GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme"), metadata=AUTH, timeout=CALL
    )
    assert usage.usage.limit == 100
    assert await refused(secure(channels, service.admin_port, pki.ca1)) is (
        grpc.StatusCode.UNAVAILABLE
    )
    assert await healthy(secure(channels, service.port, pki.ca1))
    assert await refused(secure(channels, service.port, pki.ca2)) is grpc.StatusCode.UNAVAILABLE


async def test_an_admin_listener_without_its_own_certificate_serves_the_enforcers(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, channels: list[grpc.aio.Channel]
) -> None:
    service = await tls_sidecar(make_sidecar, served, admin_addr="127.0.0.1:0")
    assert await healthy(secure(channels, service.admin_port, pki.ca1))
    replace(pki.server2.cert, served.cert)
    replace(pki.server2.key, served.key)
    # both listeners take the new certificate, though they share its files
    assert await healthy(secure(channels, service.port, pki.ca2))
    assert await healthy(secure(channels, service.admin_port, pki.ca2))


# -- the admin token file ------------------------------------------------------------------


async def test_a_changed_admin_token_file_takes_effect_without_a_restart(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki, tmp_path: Path
) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("first-token\n")
    service = await tls_sidecar(
        make_sidecar, served, admin_token="", admin_token_file=str(token_file)
    )
    tls = TLS(ca_file=str(pki.ca1))
    address = f"127.0.0.1:{service.port}"

    async def usage(token: str) -> grpc.StatusCode:
        async with AsyncClient(address, tls=tls, token=token, deadline=CALL) as mac:
            try:
                await mac.get_usage("acme")
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    assert await usage("first-token") is grpc.StatusCode.OK
    assert await usage("second-token") is grpc.StatusCode.UNAUTHENTICATED
    fresh = tmp_path / "admin-token.new"
    fresh.write_text("second-token\n")
    os.replace(fresh, token_file)
    assert await usage("first-token") is grpc.StatusCode.UNAUTHENTICATED
    assert await usage("second-token") is grpc.StatusCode.OK


# -- bad files at start ----------------------------------------------------------------------


def test_unusable_files_at_start_name_their_variable(
    settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cert, key = str(pki.server1.cert), str(pki.server1.key)
    cases = {
        "MAC_TLS_CERT_FILE: cannot read": {"tls_cert_file": str(tmp_path / "missing")},
        "MAC_TLS_CERT_FILE: ": {"tls_cert_file": str(garbage)},
        "MAC_TLS_KEY_FILE: cannot read": {"tls_key_file": str(tmp_path / "missing")},
        "is not the private key of MAC_TLS_CERT_FILE": {"tls_key_file": str(pki.server2.key)},
        "is not an unencrypted PEM private key": {"tls_key_file": str(garbage)},
        "MAC_TLS_CLIENT_CA_FILE: ": {"tls_client_ca_file": str(garbage)},
        "MAC_ADMIN_TLS_KEY_FILE: ": {
            "admin_addr": "127.0.0.1:0",
            "admin_tls_cert_file": str(pki.admin2.cert),
            "admin_tls_key_file": str(pki.server1.key),
        },
    }
    for message, changes in cases.items():
        changed = settings.replace(**{"tls_cert_file": cert, "tls_key_file": key, **changes})
        with pytest.raises(ConfigError, match=message):
            Sidecar(changed)


def test_serve_refuses_a_bad_certificate_with_one_line(
    redis_server: RedisServer, pki: Pki, tmp_path: Path
) -> None:
    env = SidecarProcess(
        redis_server.url,
        MAC_TLS_CERT_FILE=str(pki.server1.cert),
        MAC_TLS_KEY_FILE=str(pki.client1.key),
    ).env
    done = serve_once(env)
    assert done.returncode == 2
    assert "MAC_TLS_KEY_FILE" in done.stderr
    assert "PRIVATE KEY" not in done.stderr


async def test_serve_logs_tls_and_mtls_without_key_material(
    redis_server: RedisServer, pki: Pki, served: Pair
) -> None:
    process = SidecarProcess(
        redis_server.url,
        MAC_TLS_CERT_FILE=str(served.cert),
        MAC_TLS_KEY_FILE=str(served.key),
        MAC_TLS_CLIENT_CA_FILE=str(pki.ca1),
    )
    await asyncio.to_thread(process.start)
    try:
        tls = TLS(str(pki.ca1), str(pki.client1.cert), str(pki.client1.key))
        async with AsyncClient(f"127.0.0.1:{process.port}", tls=tls, deadline=CALL) as mac:
            assert (await mac.check("acme", id="crm-1")).allowed
    finally:
        assert await asyncio.to_thread(process.stop) == 0
    listening = json.loads(next(line for line in process.lines if '"listening"' in line))
    assert (listening["tls"], listening["mtls"]) == (True, True)
    key = served.key.read_text()
    body = "".join(key.splitlines()[1:-1])
    assert all("PRIVATE KEY" not in line and body[:32] not in line for line in process.lines)


# -- the CLI -----------------------------------------------------------------------------------


async def test_the_cli_talks_tls_and_mtls(
    make_sidecar: SidecarFactory, served: Pair, pki: Pki
) -> None:
    service = await tls_sidecar(make_sidecar, served, tls_client_ca_file=str(pki.ca1))
    addr = f"--addr=127.0.0.1:{service.port}"
    client = ("--tls-cert", str(pki.client1.cert), "--tls-key", str(pki.client1.key))

    code, out, err = await cli(
        "activate", "acme", "--id", "crm-1", addr, "--tls-ca", str(pki.ca1), *client
    )
    assert (code, err) == (0, "")
    assert "allowed: ADMITTED" in out

    # the same from the variables, an Admin command with the token, the name checked given
    code, out, err = await cli(
        "usage",
        "acme",
        "--json",
        f"--addr=localhost:{service.port}",
        f"--token={ADMIN_TOKEN}",
        MAC_CLI_TLS_CA=str(pki.ca1),
        MAC_CLI_TLS_CERT=str(pki.client1.cert),
        MAC_CLI_TLS_KEY=str(pki.client1.key),
        MAC_CLI_TLS_SERVER_NAME="localhost",
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["usage"]["active"] == 1

    # without a client certificate, or plaintext (--no-tls wins over the variables): refused;
    # the server closes the connection, so the client sees a sidecar it cannot reach (3)
    for refused_args, env in (
        (("--tls-ca", str(pki.ca1)), {}),
        (("--no-tls",), {"MAC_CLI_TLS_CA": str(pki.ca1)}),
    ):
        code, out, err = await cli(
            "check", "acme", "--id", "x", addr, "--timeout=2", *refused_args, **env
        )
        assert (code, out) == (3, ""), err
        assert len(err.strip().splitlines()) == 1, err


async def test_the_cli_explains_bad_tls_options(served: Pair, pki: Pki, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    code, out, err = await cli("check", "acme", "--id", "x", "--tls-ca", missing)
    assert (code, out) == (2, "")
    assert err.startswith("error: --tls-ca (MAC_CLI_TLS_CA): cannot read ")
    code, _, err = await cli("check", "acme", "--id", "x", "--tls-cert", str(pki.client1.cert))
    assert code == 2
    assert "--tls-cert and --tls-key go together" in err
    code, _, err = await cli("usage", "acme", MAC_CLI_TLS="maybe")
    assert code == 2
    assert "MAC_CLI_TLS must be" in err
