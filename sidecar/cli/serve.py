"""``sidecar serve``: run the service (one process, or a supervisor of ``--workers``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Coroutine
from typing import Any

from sidecar import __version__, logs
from sidecar.cli import exits
from sidecar.domain.errors import ConfigError
from sidecar.settings import Settings, add_arguments


def serve(ns: argparse.Namespace) -> int:
    """Read the settings and serve until SIGTERM or SIGINT; return the exit status."""
    from sidecar.server.admins import admin_access
    from sidecar.server.engines import engine
    from sidecar.server.serve import run
    from sidecar.server.tls import ServerTLS
    from sidecar.server.workers import WORKER_ENV, Supervisor, check_ports, watch_supervisor

    overrides = {k: v for k, v in vars(ns).items() if k in Settings.__dataclass_fields__}
    try:
        settings = Settings.from_env(os.environ, overrides)
        settings.secret_bytes()
        ServerTLS.from_settings(settings)  # unusable certificates stop the start, once
        engine(settings)  # as does MAC_GRPC_ENGINE=native without the native extra
        admin_access(settings)  # and a bad tokens file, or an Admin open beyond this host
    except ConfigError as exc:
        print(f"sidecar: configuration error: {exc}", file=sys.stderr)
        return exits.USAGE
    logs.configure(settings.log_level, settings.log_format)
    if not os.environ.get(WORKER_ENV):
        logs.get_logger("sidecar").info("starting", version=__version__, **settings.public())
    try:
        if settings.workers > 1:
            return Supervisor(settings).run()
        if os.environ.get(WORKER_ENV):
            if not watch_supervisor(settings):
                return 0
        else:
            check_ports(settings)
        run_loop(run(settings))
    except ConfigError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return exits.USAGE
    return 0


# After a graceful stop, how long tasks still running get to end once cancelled.
CANCEL_GRACE = 2.0
GC_YOUNG_THRESHOLD = 20_000


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is built, else on asyncio's loop; then cancel what is
    left and wait for it at most ``CANCEL_GRACE`` seconds (``asyncio.run`` would wait for ever
    on a task that does not end when cancelled, and the process would never exit)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # Decisions make many short-lived objects and hardly any cycles: the collector's youngest
    # generation is examined every 20,000 allocations instead of 700, and what exists at
    # start (modules, settings, the catalog) is left out of every later collection.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        loop.run_until_complete(main)
    finally:
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=CANCEL_GRACE))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def add_command(commands: Any) -> None:
    """Add ``serve`` to the ``sidecar`` subcommands."""
    parser = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(parser)
    parser.set_defaults(handler=serve)
