"""Redis outages for the tests: a server stopped with its data kept, and started again on the
same port with that data."""

from __future__ import annotations

from tests.support.redis_servers import RedisServer


def stop_keeping_data(server: RedisServer) -> None:
    """Write the server's data to its directory (``SAVE``), then stop it; ``server.start()``
    loads it again, so an outage loses nothing that Redis had."""
    client = server.client()
    try:
        client.save()
    finally:
        client.close()
    server.stop()
