"""In-process sidecars with setting overrides, started on port 0 and stopped at the end."""

from __future__ import annotations

import grpc

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings


class SidecarFactory:
    """Starts sidecars with setting overrides; stops them all at the end of the test."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        self.settings = settings
        self.clock = clock
        self._started: list[tuple[Sidecar, grpc.aio.Channel]] = []
        self._channels: list[grpc.aio.Channel] = []

    async def __call__(self, **changes: object) -> pb_grpc.EnforcerStub:
        service = Sidecar(self.settings.replace(**changes), self.clock)
        await service.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
        self._started.append((service, channel))
        return pb_grpc.EnforcerStub(channel)

    @property
    def last(self) -> Sidecar:
        return self._started[-1][0]

    def admin(self) -> admin_grpc.AdminStub:
        """The Admin stub of the last sidecar started (same port unless admin_addr is set)."""
        service, channel = self._started[-1]
        if service.admin_server is None:
            return admin_grpc.AdminStub(channel)
        admin_channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.admin_port}")
        self._channels.append(admin_channel)
        return admin_grpc.AdminStub(admin_channel)

    async def close(self) -> None:
        for extra in self._channels:
            await extra.close()
        for service, channel in self._started:
            await channel.close()
            await service.stop()
