"""``sidecar serve`` in one process: the sidecar served until SIGINT or SIGTERM, with what it
listens on logged at the start."""

from __future__ import annotations

import asyncio
import signal

from sidecar.logs import get_logger
from sidecar.server.app import Sidecar
from sidecar.settings import Settings, redact_endpoint, split_addr

log = get_logger("sidecar.server")


async def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sidecar = Sidecar(settings)
    port = await sidecar.start()
    host, _ = split_addr(settings.grpc_addr)
    admin_host = split_addr(settings.admin_addr)[0] if sidecar.admin_server else host
    log.info(
        "listening",
        grpc=f"{host}:{port}",
        grpc_uds=settings.grpc_uds or None,
        admin=f"{admin_host}:{sidecar.admin_port}",
        admin_auth=sidecar.admin_access.secured,
        admin_names_from_cert=settings.admin_names_from_cert,
        engine=settings.grpc_engine,
        tls=settings.tls,
        mtls=sidecar.tls.mutual if sidecar.tls else False,
        admin_certificate=settings.admin_tls_cert_file or None,
        metrics=settings.metrics_addr or None,
        metrics_port=sidecar.metrics_port or None,
        redis_ok=sidecar.redis_ok,
        webhooks=redact_endpoint(settings.webhook_url) or None,
    )
    if not sidecar.admin_access.secured:
        log.warning(
            "the Admin service has no token: it answers callers on this host only; set "
            "MAC_ADMIN_TOKEN or MAC_ADMIN_TOKENS_FILE outside development"
        )
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace)
    await sidecar.stop()
