"""The per-client token bucket: a burst, then one request per 1/rate seconds, per client."""

from __future__ import annotations

from producers.collector.rate_limit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_client() -> None:
    """3 allowed at once, the 4th waits 0.5 s at 2/s; another client is unaffected."""
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5
    assert buckets.take("b") == 0.0
    clock.now = 0.5
    assert buckets.take("a") == 0.0


def test_table_of_clients_is_bounded() -> None:
    """The least recently seen client is forgotten beyond the bound (and starts afresh)."""
    buckets = TokenBuckets(rate=1.0, burst=1, clock=Clock(), max_clients=2)
    assert buckets.take("a") == 0.0
    buckets.take("b")
    buckets.take("c")
    assert len(buckets._buckets) == 2
    assert buckets.take("a") == 0.0  # forgotten, so a full bucket again
