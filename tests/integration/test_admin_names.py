"""Named admins: a tokens file's admins each let in under its name and read again when the
file changes, names from client certificates, an Admin service without a token answering this
host only, and refused Admin calls counted by reason."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from sidecar.client import AsyncClient
from sidecar.domain.clock import ManualClock
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.server.admins import admin_access
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.certificates import CLIENT_EXT, SERVER_EXT, Pair, issue, make_ca
from tests.support.commands import cli, serve_once
from tests.support.constants import ADMIN_TOKEN, AUTH, SECRET
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory

ANA = "ana-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
GET = admin_pb.GetSubscriptionRequest(workspace_id="acme")
CALL = 5.0  # seconds any one call of these tests may take


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def rotate(path: Path, content: str) -> None:
    """Put ``content`` at ``path`` the way a Secret's rotation does: a new file, then a
    rename over the old one."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(content)
    os.replace(fresh, path)


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "admins"
    path.write_text(f"# the operators\nana {ANA}\nbob {BOB}\n")
    return path


async def status(stub: admin_grpc.AdminStub, metadata: tuple[tuple[str, str], ...]) -> str:
    """The status name of a GetSubscription call made with ``metadata``."""
    try:
        await stub.GetSubscription(GET, metadata=metadata, timeout=CALL)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("mac_admin_refusals_total", {"reason": reason}) or 0.0


# -- named admins ---------------------------------------------------------------------------


async def test_each_admin_of_the_tokens_file_is_let_in_beside_the_single_token(
    make_sidecar: SidecarFactory, tokens_file: Path
) -> None:
    await make_sidecar(admin_tokens_file=str(tokens_file))
    stub = make_sidecar.admin()
    assert await status(stub, bearer(ANA)) == "OK"
    assert await status(stub, bearer(BOB)) == "OK"
    assert await status(stub, AUTH) == "OK"  # MAC_ADMIN_TOKEN: the admin 'admin'
    for wrong in ("ana", ANA[:-1], ANA + "x", BOB.upper()):
        assert await status(stub, bearer(wrong)) == "UNAUTHENTICATED"
    assert await status(stub, (("authorization", f"Bearer {ANA}"),) * 2) == "UNAUTHENTICATED"


async def test_a_changed_tokens_file_takes_effect_and_a_bad_one_keeps_the_last(
    make_sidecar: SidecarFactory, tokens_file: Path
) -> None:
    await make_sidecar(admin_token="", admin_tokens_file=str(tokens_file))
    stub = make_sidecar.admin()
    carol = "carol-token-0123456789abcdef"
    rotate(tokens_file, f"bob {BOB}\ncarol {carol}\n")
    assert await status(stub, bearer(ANA)) == "UNAUTHENTICATED"
    assert await status(stub, bearer(carol)) == "OK"
    assert await status(stub, bearer(BOB)) == "OK"
    rotate(tokens_file, f"bob {BOB}\nana short\n")  # a bad line: the file is not taken
    assert await status(stub, bearer(carol)) == "OK"
    assert await status(stub, bearer(ANA)) == "UNAUTHENTICATED"
    rotate(tokens_file, f"ana {ANA}\n")
    assert await status(stub, bearer(ANA)) == "OK"
    assert await status(stub, bearer(BOB)) == "UNAUTHENTICATED"


async def test_a_bad_tokens_file_stops_the_start(
    settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    bad = tmp_path / "admins"
    bad.write_text(f"ana {ANA}\nadmin {BOB}\n")
    with pytest.raises(ConfigError, match=f"MAC_ADMIN_TOKENS_FILE: {bad} line 2: 'admin' is"):
        Sidecar(settings.replace(admin_tokens_file=str(bad)), clock)
    bad.write_text(f"ana {ANA}\nbob {ANA}\n")
    with pytest.raises(ConfigError, match="line 2: the token of line 1 again"):
        Sidecar(settings.replace(admin_token="", admin_tokens_file=str(bad)), clock)


def test_sidecar_serve_names_the_bad_line(
    redis_server: RedisServer, tmp_path: Path, engine_env: str
) -> None:
    bad = tmp_path / "admins"
    bad.write_text(f"ana {ANA}\nbob\n")
    result = serve_once(
        {
            **os.environ,
            "MAC_REDIS_URL": redis_server.url,
            "MAC_IDENTITY_SECRET": SECRET,
            "MAC_GRPC_ADDR": "127.0.0.1:0",
            "MAC_METRICS_ADDR": "",
            "MAC_ADMIN_TOKENS_FILE": str(bad),
        }
    )
    assert result.returncode != 0
    assert f"MAC_ADMIN_TOKENS_FILE: {bad} line 2: expected 'name token'" in result.stderr
    assert ANA not in result.stderr


async def test_each_call_is_logged_with_its_admins_name(
    redis_server: RedisServer, tokens_file: Path, engine_env: str
) -> None:
    process = SidecarProcess(
        redis_server.url,
        MAC_ADMIN_TOKEN=ADMIN_TOKEN,
        MAC_ADMIN_TOKENS_FILE=str(tokens_file),
        MAC_LOG_LEVEL="info",
    )
    port = process.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = admin_grpc.AdminStub(channel)
            for token in (ANA, BOB, ADMIN_TOKEN, "wrong-token-0123456789"):
                await status(stub, bearer(token))
    finally:
        process.stop()
    calls = [
        (entry["admin"], entry["method"], entry["workspace"])
        for entry in map(json.loads, process.lines)
        if entry.get("event") == "admin call"
    ]
    assert calls == [
        ("ana", "GetSubscription", "acme"),
        ("bob", "GetSubscription", "acme"),
        ("admin", "GetSubscription", "acme"),
    ]
    assert not any(ANA in line or BOB in line for line in process.lines)


# -- without a token ------------------------------------------------------------------------


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # short: a socket's path is limited to about 100 bytes, pytest's tmp_path may be longer
    with tempfile.TemporaryDirectory(prefix="mac-uds-") as directory:
        yield Path(directory)


async def test_without_a_token_this_host_is_let_in_and_a_token_sent_is_refused(
    make_sidecar: SidecarFactory, socket_dir: Path
) -> None:
    socket = socket_dir / "mac.sock"
    await make_sidecar(admin_token="", grpc_uds=str(socket))
    stub = make_sidecar.admin()
    assert await status(stub, ()) == "OK"
    before = refusals("unauthenticated")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetSubscription(GET, metadata=AUTH, timeout=CALL)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == "this sidecar has no admin token; send none"
    assert refusals("unauthenticated") == before + 1
    async with AsyncClient(f"unix:{socket}", deadline=CALL) as mac:
        assert (await mac.get_subscription("acme")).is_default


async def test_the_cli_says_to_send_no_token(make_sidecar: SidecarFactory) -> None:
    await make_sidecar(admin_token="")
    addr = f"--addr=127.0.0.1:{make_sidecar.last.port}"
    code, _, err = await cli("usage", "acme", addr, "--token=some-token")
    assert code != 0
    assert "error: UNAUTHENTICATED: this sidecar has no admin token; send none" in err
    assert "hint: leave out --token, MAC_ADMIN_TOKEN and MAC_ADMIN_TOKEN_FILE" in err
    code, out, _ = await cli("usage", "acme", addr, MAC_ADMIN_TOKEN="")
    assert code == 0, out


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"grpc_addr": "0.0.0.0:0"}, "MAC_GRPC_ADDR"),
        ({"admin_addr": "0.0.0.0:0"}, "MAC_ADMIN_ADDR"),
    ],
)
def test_without_a_token_an_admin_service_beyond_this_host_does_not_start(
    settings: Settings, clock: ManualClock, changes: dict[str, str], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Sidecar(settings.replace(admin_token="", **changes), clock)
    message = str(caught.value)
    assert f"0.0.0.0:0 ({setting}) without an admin token" in message
    assert "MAC_ADMIN_TOKEN, MAC_ADMIN_TOKEN_FILE or MAC_ADMIN_TOKENS_FILE" in message
    # with a token, the same address is served
    assert admin_access(settings.replace(**changes)).secured


# -- refusals -------------------------------------------------------------------------------


async def test_refused_admin_calls_are_counted_by_reason(admin_stub: admin_grpc.AdminStub) -> None:
    before = {r: refusals(r) for r in ("unauthenticated", "invalid_argument", "not_found")}
    await status(admin_stub, bearer("wrong-token"))
    await status(admin_stub, ())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin_stub.GetUsage(
            admin_pb.GetUsageRequest(workspace_id="acme", period="2026-13"), metadata=AUTH
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await admin_stub.GetSubscription(GET, metadata=AUTH)  # served: not counted
    assert refusals("unauthenticated") == before["unauthenticated"] + 2
    assert refusals("invalid_argument") == before["invalid_argument"] + 1
    assert refusals("not_found") == before["not_found"]


async def test_undecodable_admin_requests_are_counted_as_invalid_input(
    sidecar_app: Sidecar, channel: grpc.aio.Channel
) -> None:
    before = refusals("invalid_argument")
    garbage = b"\xff\xff\xff"
    get_usage: Any = channel.unary_unary("/mac.v1.Admin/GetUsage")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_usage(garbage, metadata=AUTH, timeout=CALL)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    watch: Any = channel.unary_stream("/mac.v1.Admin/WatchEvents")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(garbage, metadata=AUTH, timeout=CALL).read()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refusals("invalid_argument") == before + 2
    # the Enforcer's refusals are not the Admin service's
    activate: Any = channel.unary_unary("/mac.v1.Enforcer/Activate")
    with pytest.raises(grpc.aio.AioRpcError):
        await activate(garbage, timeout=CALL)
    assert refusals("invalid_argument") == before + 2


# -- names from client certificates ---------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    if shutil.which("openssl") is None:  # pragma: no cover - the dev image has it
        pytest.skip("needs the openssl command")
    cwd = tmp_path_factory.mktemp("pki")
    ca = make_ca(cwd, "ca")
    dns_only = "subjectAltName=IP:10.0.0.9,DNS:bob.ops.example\nextendedKeyUsage=clientAuth\n"
    return {
        "ca": ca,
        "server": issue(cwd, ca, "server", SERVER_EXT),
        "ana": issue(cwd, ca, "ops-ana", CLIENT_EXT),
        "bob": issue(cwd, ca, "bob", dns_only, subject="/O=Acme"),
        "unnamed": issue(cwd, ca, "unnamed", CLIENT_EXT, subject="/CN=Ana Smith"),
    }


def mtls_channel(port: int, pki: dict[str, Pair], client: str) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].cert.read_bytes(),
        private_key=pki[client].key.read_bytes(),
        certificate_chain=pki[client].cert.read_bytes(),
    )
    return grpc.aio.secure_channel(
        f"localhost:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)]
    )


@pytest.mark.grpcio_only("the native engine serves no TLS, so no certificate names an admin")
async def test_a_client_certificate_names_the_admin(
    redis_server: RedisServer, pki: dict[str, Pair], engine_env: str
) -> None:
    process = SidecarProcess(
        redis_server.url,
        MAC_TLS_CERT_FILE=str(pki["server"].cert),
        MAC_TLS_KEY_FILE=str(pki["server"].key),
        MAC_TLS_CLIENT_CA_FILE=str(pki["ca"].cert),
        MAC_ADMIN_NAMES_FROM_CERT="true",
        MAC_ADMIN_TOKEN=ADMIN_TOKEN,
        MAC_LOG_LEVEL="info",
    )
    port = process.start()
    calls = [
        ("ana", ()),
        ("bob", ()),
        ("ana", AUTH),  # a token sent names the admin, not the certificate
        ("ana", bearer("wrong-token-0123456789")),  # and a wrong one is refused
        ("unnamed", ()),
    ]
    found = []
    try:
        for client, metadata in calls:
            async with mtls_channel(port, pki, client) as channel:
                found.append(await status(admin_grpc.AdminStub(channel), metadata))
    finally:
        process.stop()
    assert found == ["OK", "OK", "OK", "UNAUTHENTICATED", "UNAUTHENTICATED"]
    admins = [
        entry["admin"]
        for entry in map(json.loads, process.lines)
        if entry.get("event") == "admin call"
    ]
    assert admins == ["ops-ana", "bob.ops.example", "admin"]
    refused = [
        entry["error"]
        for entry in map(json.loads, process.lines)
        if entry.get("event") == "rpc refused"
    ]
    assert refused[-1].startswith("the client certificate's subject CN is not an admin name")
