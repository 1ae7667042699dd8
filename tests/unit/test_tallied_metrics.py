"""The tallied metrics of the hot path export what prometheus-client's own would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sidecar.metrics import (
    LATENCY_BUCKETS,
    TalliedCounter,
    TalliedGauge,
    TalliedHistogram,
)


def test_tallies_export_the_same_text_as_prometheus_client_metrics() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    labels = ["method", "code"]
    counters = (
        Counter("t_total", "doc", labels, registry=theirs),
        TalliedCounter("t_total", "doc", labels, registry=ours),
    )
    gauges = (
        Gauge("t_flying", "doc", ["method"], registry=theirs),
        TalliedGauge("t_flying", "doc", ["method"], registry=ours),
    )
    histograms = (
        Histogram("t_seconds", "doc", ["method"], buckets=LATENCY_BUCKETS, registry=theirs),
        TalliedHistogram("t_seconds", "doc", ["method"], buckets=LATENCY_BUCKETS, registry=ours),
    )
    rng = random.Random(7)
    # every bound exactly, either side of each, and beyond the last
    amounts = [*LATENCY_BUCKETS, *(b * 0.999 for b in LATENCY_BUCKETS), 0.0, 3.0, 1e9]
    amounts += [rng.uniform(0, 3) for _ in range(200)]
    for n, amount in enumerate(amounts):
        method = ("Activate", "Check")[n % 2]
        for counter in counters:
            counter.labels(method, ("OK", "UNAVAILABLE")[n % 3 == 0]).inc()
            counter.labels(method, "OK").inc(n % 4)
        for gauge in gauges:
            gauge.labels(method).inc()
            if n % 3:
                gauge.labels(method).dec()
        for histogram in histograms:
            histogram.labels(method).observe(amount)
    assert generate_latest(ours) == generate_latest(theirs)
    assert ours.get_sample_value("t_total", {"method": "Check", "code": "OK"}) == (
        theirs.get_sample_value("t_total", {"method": "Check", "code": "OK"})
    )
