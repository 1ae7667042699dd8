"""Prometheus metrics: every metric of the service is defined here, once.

Labels stay bounded: RPC method, gRPC code, decision reason. Never a workspace or a contact.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
