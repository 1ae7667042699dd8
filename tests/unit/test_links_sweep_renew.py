"""The links sweep renews the closing sweep's lease at most every RENEW_EVERY_S, and stops for
good once the lease is lost."""

from __future__ import annotations

import pytest

from sidecar.usecases import forgetting


async def test_the_lease_is_renewed_at_most_every_interval_and_a_loss_is_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("sidecar.usecases.forgetting.time.monotonic", lambda: now[0])
    answers = [True, False, True]
    asked: list[float] = []

    async def renew() -> bool:
        asked.append(now[0])
        return answers[len(asked) - 1]

    throttled = forgetting._throttled(renew)
    assert throttled is not None
    assert await throttled()  # the first page asks
    now[0] += forgetting.RENEW_EVERY_S / 2
    assert await throttled()  # soon after: not asked again
    assert asked == [100.0]
    now[0] += forgetting.RENEW_EVERY_S
    assert not await throttled()  # asked: the lease is lost
    now[0] += forgetting.RENEW_EVERY_S * 5
    assert not await throttled()  # lost for good: never asked again
    assert len(asked) == 2
    assert forgetting._throttled(None) is None
