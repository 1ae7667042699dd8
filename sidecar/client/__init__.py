"""A Python client of the sidecar: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

from sidecar.client import Client

with Client("127.0.0.1:50051", deadline=0.5, on_unavailable="allow") as mac:
    decision = mac.activate("acme", email="ana@example.com", channel="whatsapp")
    if not decision.allowed:
        ...  # show the visitor the "we are at capacity" message
"""

from sidecar.client.aio import AsyncClient
from sidecar.client.blocking import Client
from sidecar.client.calls import activate_request, check_request
from sidecar.client.options import TLS, ClientOptions
from sidecar.client.results import BatchResult, Decision, StreamError, Usage

__all__ = [
    "TLS",
    "AsyncClient",
    "BatchResult",
    "Client",
    "ClientOptions",
    "Decision",
    "StreamError",
    "Usage",
    "activate_request",
    "check_request",
]
