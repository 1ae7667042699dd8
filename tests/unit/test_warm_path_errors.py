"""A failing warm path: every failure counted, its log rate-limited."""

from __future__ import annotations

from prometheus_client import REGISTRY

from sidecar.transport.runner import WarmPathErrors


def test_every_failure_is_counted_and_one_a_period_logged() -> None:
    now = [100.0]
    errors = WarmPathErrors(every=60.0, monotonic=lambda: now[0])
    before = REGISTRY.get_sample_value("mac_warm_path_errors_total") or 0.0
    logged = [errors.failed(RuntimeError("broken")) for _ in range(3)]
    now[0] += 59.9
    logged.append(errors.failed(RuntimeError("broken")))
    now[0] += 0.1
    logged.append(errors.failed(RuntimeError("broken")))
    assert logged == [True, False, False, False, True]
    assert (REGISTRY.get_sample_value("mac_warm_path_errors_total") or 0.0) - before == 5
