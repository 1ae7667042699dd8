"""Prometheus metrics: every metric of the service is defined here, once.

Labels stay bounded: RPC method, gRPC code, decision reason, Redis operation, webhook failure
reason. A workspace is a label only on the opt-in per-workspace gauges, whose number is capped;
a contact never is.
Every gauge says how to combine processes, for prometheus-client's multiprocess mode
(``sidecar serve --workers N``).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Sequence

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

# prometheus-client's multiprocess mode (``--workers N``), chosen as it chooses it: by the
# variable's presence when the first metric is made.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class _Plain:
    """A metric's value without prometheus-client's lock (the ``values.ValueClass``
    interface, exemplars left out)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float) -> None:
        self.value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def set_exemplar(self, exemplar: object) -> None:
        pass

    def get_exemplar(self) -> None:
        return None


# The metrics every call updates, in a single process: prometheus-client's own, exported by
# its own code, but their children hold plain numbers and update them in one addition (its
# own update takes a lock and checks its arguments: about a microsecond each, three or four
# per call). Updates come from the event loop's thread only; a collection, in another,
# reads. In multiprocess mode they are prometheus-client's as they are: each update is
# written to the file the supervising process reads.


class TalliedCounter(Counter):
    """A ``Counter`` whose children count in a plain number."""

    def _metric_init(self) -> None:
        self._value = _Plain()
        self._created = time.time()

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        self._value.value += amount


class TalliedGauge(Gauge):
    """A ``Gauge`` whose children hold a plain number."""

    def _metric_init(self) -> None:
        self._value = _Plain()

    def inc(self, amount: float = 1) -> None:
        self._value.value += amount

    def dec(self, amount: float = 1) -> None:
        self._value.value -= amount


class TalliedHistogram(Histogram):
    """A ``Histogram`` whose children count in plain numbers."""

    def _metric_init(self) -> None:
        self._created = time.time()
        self._sum = _Plain()
        self._buckets = [_Plain() for _ in self._upper_bounds]

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        # the first bucket whose upper bound is at least ``amount``, as prometheus-client's
        self._buckets[bisect_left(self._upper_bounds, amount)].value += 1
        self._sum.value += amount


# The metrics every call updates: tallied, except in multiprocess mode.
def _counter(name: str, documentation: str, labelnames: Sequence[str]) -> Counter:
    kind = Counter if MULTIPROCESS else TalliedCounter
    return kind(name, documentation, labelnames)


def _histogram(
    name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
) -> Histogram:
    kind = Histogram if MULTIPROCESS else TalliedHistogram
    return kind(name, documentation, labelnames, buckets=buckets)


def _gauge(
    name: str, documentation: str, labelnames: Sequence[str], multiprocess_mode: str
) -> Gauge:
    kind = Gauge if MULTIPROCESS else TalliedGauge
    return kind(name, documentation, labelnames, multiprocess_mode=multiprocess_mode)  # type: ignore[arg-type]


REQUESTS = _counter(
    "mac_requests_total", "gRPC requests handled, by method and status code", ["method", "code"]
)
REQUEST_SECONDS = _histogram(
    "mac_request_duration_seconds",
    "Time spent handling a gRPC request, by method",
    ["method"],
    LATENCY_BUCKETS,
)
IN_FLIGHT = _gauge(
    "mac_requests_in_flight",
    "gRPC requests being handled, by method",
    ["method"],
    multiprocess_mode="livesum",
)
DECISIONS = _counter(
    "mac_decisions_total", "Decisions made, by method and reason", ["method", "reason"]
)
ADMIN_REFUSALS = Counter(
    "mac_admin_refusals_total",
    "Admin calls refused for what their caller sent, by reason: unauthenticated (no token, a "
    "wrong one, a certificate naming no admin), invalid_argument, failed_precondition, "
    "not_found. Nothing else of a refused call is kept",
    ["reason"],
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
WARM_PATH_ERRORS = Counter(
    "mac_warm_path_errors_total",
    "Warm path answers that raised (a fault of the sidecar): each call was decided by Redis "
    "instead; the error is logged at most once a minute",
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
DECISIONS_UNKNOWN = Counter(
    "mac_redis_unknown_outcomes_total",
    "Decisions whose outcome is unknown (the script call timed out, its connection was lost "
    "after sending, or replicas did not confirm it): it may have run, so contacts a caller saw "
    "fail may be counted (their next call answers ALREADY_ACTIVE)",
)
OVERAGE_ADMISSIONS = Counter(
    "mac_overage_admissions_total",
    "New contacts admitted beyond the limit under a subscription's overage_percent (billed as "
    "overage; dry runs not counted)",
)
FLOOD_DENIALS = Counter(
    "mac_flood_denials_total",
    "New contacts denied by a subscription's flood guard (HOLD, REASON_RATE_LIMITED): past its "
    "new_per_minute in a sliding minute (dry runs and shadow mode not counted)",
)
PERIODS_CLOSED = Counter(
    "mac_periods_closed_total",
    "Periods closed by this process (their statement written, PERIOD_CLOSED recorded): by a "
    "decision after the close instant, the sweep, GetUsage or ListStatements",
)
CLOSE_FAILURES = Counter(
    "mac_close_failures_total",
    "Sweeps and background closes that failed (Redis unreachable): the next sweep tries again",
)
EVENTS_RECORDED = Counter(
    "mac_events_recorded_total", "Notification events recorded (thresholds, limits, trials)"
)
BUILD_INFO = Gauge("mac_build_info", "The sidecar's version", ["version"], multiprocess_mode="max")
BUILD_INFO.labels(__version__).set(1)

# Channel names come from callers: a workspace's channel series are capped.
CHANNELS_PER_WORKSPACE = 16
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
WORKSPACE_FORECAST = Gauge(
    "mac_workspace_forecast_active_contacts",
    "Contacts projected at the period's end at its pace so far, per workspace "
    "(opt-in: MAC_METRICS_WORKSPACES)",
    ["workspace"],
    multiprocess_mode="livemostrecent",
)
WORKSPACE_CHANNEL_ACTIVE = Gauge(
    "mac_workspace_channel_active_contacts",
    "Contacts counted this period by the channel they were first counted on, per workspace "
    f"(opt-in: MAC_METRICS_WORKSPACES; at most {CHANNELS_PER_WORKSPACE} channels each)",
    ["workspace", "channel"],
    multiprocess_mode="livemostrecent",
)


# --- Webhooks (MAC_WEBHOOK_URL): docs/webhooks.md ------------------------------------------
# Every process that delivers exports the same oldest age (it looks at every workspace), so
# worker processes combine by their maximum.
WEBHOOK_FAILURE_REASONS = ("status", "timeout", "connection")
WEBHOOK_DELIVERIES = Counter(
    "mac_webhook_deliveries_total",
    "Events delivered to MAC_WEBHOOK_URL (answered with a 2xx)",
)
WEBHOOK_FAILED_ATTEMPTS = Counter(
    "mac_webhook_failed_attempts_total",
    "Webhook requests that did not deliver their event, by reason (status: a non-2xx answer; "
    "timeout: none within MAC_WEBHOOK_TIMEOUT_MS; connection: refused, reset, DNS or TLS)",
    ["reason"],
)
WEBHOOK_SKIPPED = Counter(
    "mac_webhook_skipped_total",
    "Events trimmed from their workspace's stream (MAC_EVENTS_MAX) before they were delivered",
)
WEBHOOK_OLDEST_UNDELIVERED = Gauge(
    "mac_webhook_oldest_undelivered_seconds",
    "Age of the oldest event not yet delivered, over every workspace; 0 when none",
    multiprocess_mode="livemax",
)
# ---------------------------------------------------------------------------------------------


# --- Outages: the fail-open journal (MAC_JOURNAL_DIR): docs/outages.md ---------------------
# Pending entries are each process's own (what it wrote or claimed for replay): processes add.
JOURNAL_ENTRIES = Counter(
    "mac_journal_entries_total",
    "New contacts allowed while Redis was unreachable (MAC_FAILURE_MODE=allow), written to "
    "the journal",
)
JOURNAL_SYNCS = Counter(
    "mac_journal_syncs_total",
    "Group writes of the journal, each one fsync for every entry queued in one event-loop turn",
)
JOURNAL_REPLAYED = Counter(
    "mac_journal_replayed_total",
    "Journal entries decided again by the decision script once Redis answered",
)
JOURNAL_OVERSHOOT = Counter(
    "mac_journal_overshoot_total",
    "Contacts an outage let in that the replay found over the limit: served, not counted",
)
JOURNAL_CLOSED = Counter(
    "mac_journal_closed_total",
    "Journal entries dropped uncounted on replay: their period had closed meanwhile (its count "
    "is final)",
)
JOURNAL_SKIPPED = Counter(
    "mac_journal_skipped_lines_total",
    "Journal lines skipped on replay as damaged (a last line torn by a crash mid-write)",
)
JOURNAL_PENDING = Gauge(
    "mac_journal_pending_entries",
    "Journal entries not replayed yet",
    multiprocess_mode="livesum",
)
# ---------------------------------------------------------------------------------------------


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
        self._channels: dict[str, set[str]] = {}

    def observe(
        self,
        workspace: str,
        active: int,
        limit: int,
        forecast: int,
        channels: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Record a workspace's usage after a decision, its forecast, and the new counts of
        the channels the decision changed."""
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
            for gauge in (
                WORKSPACE_ACTIVE,
                WORKSPACE_LIMIT,
                WORKSPACE_UTILISATION,
                WORKSPACE_FORECAST,
            ):
                gauge.remove(evicted)
            for channel in self._channels.pop(evicted, ()):
                WORKSPACE_CHANNEL_ACTIVE.remove(evicted, channel)
            self._lowest = None
        elif ratio < self._tracked.get(workspace, ratio) or (
            self._lowest is not None and workspace == self._lowest[1]
        ):
            self._lowest = None  # the cached minimum may no longer be the minimum
        self._tracked[workspace] = ratio
        WORKSPACE_ACTIVE.labels(workspace).set(active)
        WORKSPACE_LIMIT.labels(workspace).set(limit)
        WORKSPACE_UTILISATION.labels(workspace).set(ratio)
        WORKSPACE_FORECAST.labels(workspace).set(forecast)
        if channels:
            known = self._channels.setdefault(workspace, set())
            for channel, count in channels:
                if channel in known or len(known) < CHANNELS_PER_WORKSPACE:
                    known.add(channel)
                    WORKSPACE_CHANNEL_ACTIVE.labels(workspace, channel).set(count)
