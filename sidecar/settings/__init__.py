"""Settings: one frozen dataclass, read once from ``sidecar serve`` flags and ``MAC_*`` variables.

``settings.py`` holds every variable, its flag and its default; ``checks.py`` the rules they
must pass; ``parsing.py`` and ``flags.py`` how they are read; ``addresses.py`` the ``host:port``
and URL helpers.
"""

from sidecar.settings.addresses import redact_endpoint, redact_url, split_addr
from sidecar.settings.flags import add_arguments
from sidecar.settings.parsing import parse_bool
from sidecar.settings.redis import REDIS_TYPES
from sidecar.settings.settings import (
    DEFAULT_GRPC_ADDR,
    FAILURE_MODES,
    GRPC_ENGINES,
    LOG_FORMATS,
    LOG_LEVELS,
    Settings,
)

__all__ = [
    "DEFAULT_GRPC_ADDR",
    "FAILURE_MODES",
    "GRPC_ENGINES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDIS_TYPES",
    "Settings",
    "add_arguments",
    "parse_bool",
    "redact_endpoint",
    "redact_url",
    "split_addr",
]
