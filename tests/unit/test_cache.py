"""The bounded cache: least recently used entries dropped one at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.domain.cache import LruCache


def test_past_capacity_the_least_recently_used_entry_goes_and_only_it() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # a is now the most recent
    cache.put("d", 3)
    assert "b" not in cache
    assert [cache.peek(k) for k in "acd"] == [0, 2, 3]
    assert len(cache) == 3


def test_storing_again_makes_an_entry_recent_and_replaces_its_value() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert cache.get("a") == 10
    assert cache.get("b") is None
    assert cache.get("b", -1) == -1


def test_peek_does_not_make_an_entry_recent() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1
    cache.put("c", 3)
    assert "a" not in cache
    assert "b" in cache


def test_capacity_zero_keeps_nothing_and_negative_is_refused() -> None:
    cache: LruCache[str, int] = LruCache(0)
    cache.put("a", 1)
    assert len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        LruCache(-1)


def test_pop_and_clear() -> None:
    cache: LruCache[str, int] = LruCache(4)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.pop("a") == 1
    assert cache.pop("a") is None
    cache.clear()
    assert len(cache) == 0


@given(st.integers(1, 8), st.lists(st.integers(0, 20), max_size=200))
def test_it_holds_the_most_recently_used_keys_like_a_list_model(
    capacity: int, keys: list[int]
) -> None:
    cache: LruCache[int, int] = LruCache(capacity)
    model: list[int] = []
    for key in keys:
        if cache.get(key) is None:
            cache.put(key, key)
        if key in model:
            model.remove(key)
        model.append(key)
        model = model[-capacity:]
        assert sorted(k for k in range(21) if k in cache) == sorted(model)
