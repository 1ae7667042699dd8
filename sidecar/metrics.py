"""Prometheus metrics: every metric of the service is defined here, once.

Labels stay bounded: RPC method, gRPC code, decision reason, Redis operation. A workspace is a
label only on the opt-in per-workspace gauges, whose number is capped; a contact never is.
Every gauge says how to combine processes, for prometheus-client's multiprocess mode
(``sidecar serve --workers N``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from sidecar import __version__

# No `_created` series beside every counter and histogram: hundreds of lines nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# From 50 µs: the service's own work is well under a millisecond.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

REQUESTS = Counter(
    "mac_requests_total", "gRPC requests handled, by method and status code", ["method", "code"]
)
REQUEST_SECONDS = Histogram(
    "mac_request_duration_seconds",
    "Time spent handling a gRPC request, by method",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "mac_requests_in_flight",
    "gRPC requests being handled, by method",
    ["method"],
    multiprocess_mode="livesum",
)
DECISIONS = Counter(
    "mac_decisions_total", "Decisions made, by method and reason", ["method", "reason"]
)
BATCH_SIZE = Histogram(
    "mac_batch_size_contacts",
    "Contacts per ActivateBatch call",
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000),
)
SHADOW_DENIALS = Counter(
    "mac_shadow_denials_total",
    "Contacts over the limit that shadow mode allowed instead of denying, by method",
    ["method"],
)
REDIS_ROUND_TRIPS = Counter(
    "mac_redis_round_trips_total", "Commands sent to Redis, by operation", ["operation"]
)
REDIS_SECONDS = Histogram(
    "mac_redis_round_trip_seconds",
    "Time from sending a command to Redis to its reply, by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
REDIS_ERRORS = Counter(
    "mac_redis_errors_total",
    "Redis commands that failed, by operation and kind (transient: connection, timeout, "
    "failover; permanent: anything a retry cannot fix)",
    ["operation", "kind"],
)
SCRIPT_RELOADS = Counter(
    "mac_redis_script_reloads_total", "Lua scripts loaded again after NOSCRIPT", ["script"]
)
REDIS_UP = Gauge(
    "mac_redis_up",
    "1 while Redis answers the health probe, else 0",
    multiprocess_mode="livemin",
)
EVENTS_RECORDED = Counter(
    "mac_events_recorded_total", "Notification events recorded (thresholds, limits, trials)"
)
BUILD_INFO = Gauge("mac_build_info", "The sidecar's version", ["version"], multiprocess_mode="max")
BUILD_INFO.labels(__version__).set(1)

WORKSPACE_ACTIVE = Gauge(
    "mac_workspace_active_contacts",
    "Contacts counted this period, per workspace (opt-in: MAC_METRICS_WORKSPACES)",
    ["workspace"],
    multiprocess_mode="livemostrecent",
)
WORKSPACE_LIMIT = Gauge(
    "mac_workspace_limit_contacts",
    "The effective limit, per workspace (opt-in: MAC_METRICS_WORKSPACES)",
    ["workspace"],
    multiprocess_mode="livemostrecent",
)
WORKSPACE_UTILISATION = Gauge(
    "mac_workspace_utilisation_ratio",
    "Counted contacts over the limit, per workspace (opt-in: MAC_METRICS_WORKSPACES)",
    ["workspace"],
    multiprocess_mode="livemostrecent",
)


class WorkspaceGauges:
    """The per-workspace gauges, for at most ``capacity`` workspaces: the most utilised.

    When full, a workspace more utilised than the least utilised one tracked takes its place
    (whose series is removed), so the exported set stays bounded and shows the workspaces
    closest to their limits.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tracked: dict[str, float] = {}
        self._lowest: tuple[float, str] | None = None

    def observe(self, workspace: str, active: int, limit: int) -> None:
        """Record a workspace's usage after a decision."""
        if self.capacity <= 0:
            return
        ratio = active / limit if limit > 0 else 1.0
        if workspace not in self._tracked and len(self._tracked) >= self.capacity:
            if self._lowest is None:
                self._lowest = min((r, w) for w, r in self._tracked.items())
            if ratio <= self._lowest[0]:
                return
            evicted = self._lowest[1]
            del self._tracked[evicted]
            for gauge in (WORKSPACE_ACTIVE, WORKSPACE_LIMIT, WORKSPACE_UTILISATION):
                gauge.remove(evicted)
            self._lowest = None
        elif ratio < self._tracked.get(workspace, ratio) or (
            self._lowest is not None and workspace == self._lowest[1]
        ):
            self._lowest = None  # the cached minimum may no longer be the minimum
        self._tracked[workspace] = ratio
        WORKSPACE_ACTIVE.labels(workspace).set(active)
        WORKSPACE_LIMIT.labels(workspace).set(limit)
        WORKSPACE_UTILISATION.labels(workspace).set(ratio)
