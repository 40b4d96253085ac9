"""Token bucket, AIMD and in-flight cap, driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from kizen_sync.client.pacing import AdaptiveRate, Pacer, TokenBucket

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_lets_a_burst_through_then_spaces_requests():
    bucket = TokenBucket(rate=10.0, burst=3)
    delays = [bucket.reserve(100.0) for _ in range(6)]
    assert delays == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])


def test_bucket_refills_after_idle_time_but_never_beyond_burst():
    bucket = TokenBucket(rate=10.0, burst=2)
    for _ in range(4):
        bucket.reserve(0.0)
    # Ten seconds idle: only `burst` requests pass at once again.
    assert [bucket.reserve(10.0) for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_sustained_rate_matches_configuration():
    bucket = TokenBucket(rate=50.0, burst=5)
    delays = [bucket.reserve(0.0) for _ in range(505)]
    # 505 requests at 50/s with 5 free: the last one leaves at (505 - 5) / 50 = 10 s.
    assert delays[-1] == pytest.approx(10.0)


def test_unlimited_bucket_never_waits_except_for_a_pause():
    bucket = TokenBucket(rate=None)
    assert bucket.reserve(5.0) == 0
    bucket.pause(5.0, 2.0)
    bucket.pause(5.0, 1.0)  # a shorter pause never shortens the longer one
    assert bucket.reserve(5.5) == pytest.approx(1.5)


def test_adaptive_halves_on_429_once_per_cooldown():
    bucket = TokenBucket(rate=100.0, burst=10)
    aimd = AdaptiveRate(bucket)
    aimd.on_rate_limited(0.0, None)
    aimd.on_rate_limited(0.2, None)  # same burst of 429s: no second halving
    assert bucket.rate == pytest.approx(50.0)
    aimd.on_rate_limited(1.5, None)
    assert bucket.rate == pytest.approx(25.0)


def test_adaptive_starts_from_measured_rate_when_unlimited():
    bucket = TokenBucket(rate=None)
    aimd = AdaptiveRate(bucket)
    for i in range(300):  # 300 starts within the last second
        aimd.on_start(10.0 + (i + 1) / 300, 0.0)
    aimd.on_rate_limited(11.0, 1.0)
    assert bucket.rate == pytest.approx(150.0)
    assert bucket.paused_until == pytest.approx(12.0)


def test_adaptive_climbs_only_while_the_bucket_is_the_bottleneck():
    bucket = TokenBucket(rate=100.0, burst=10)
    aimd = AdaptiveRate(bucket, interval_s=0.5)
    aimd.on_rate_limited(0.0, None)  # -> 50, last failing rate 100
    now = 0.0
    for _ in range(4):  # idle client: no waits, no climbing
        now += 0.6
        aimd.on_success(now)
    assert bucket.rate == pytest.approx(50.0)
    rates = []
    for _ in range(8):
        now += 0.6
        aimd.on_start(now, 0.01)  # callers were held back
        aimd.on_success(now)
        rates.append(bucket.rate)
    # Fast recovery by 10 % of 100 up to 90, then probing by 2 per interval.
    assert rates == pytest.approx([60, 70, 80, 90, 92, 94, 96, 98])


def test_adaptive_respects_its_ceiling():
    bucket = TokenBucket(rate=10.0)
    aimd = AdaptiveRate(bucket, ceiling=10.0, interval_s=0.1)
    aimd.on_start(1.0, 0.5)
    aimd.on_success(1.0)
    assert bucket.rate == 10.0


async def test_pacer_caps_requests_in_flight():
    pacer = Pacer(rate=None, burst=1, max_in_flight=3)
    peak = 0
    active = 0

    async def one() -> None:
        nonlocal peak, active
        await pacer.acquire()
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        pacer.release()

    await asyncio.gather(*(one() for _ in range(20)))
    assert peak == 3


async def test_pacer_waits_for_tokens_and_a_pause_set_meanwhile():
    clock = FakeClock()
    pacer = Pacer(rate=10.0, burst=1, max_in_flight=10, clock=clock, sleep=clock.sleep)
    await pacer.acquire()
    pacer.release()
    pacer.bucket.pause(clock.now, 2.0)
    await pacer.acquire()
    pacer.release()
    assert clock.now == pytest.approx(102.0)
    assert pacer.waited_s == pytest.approx(2.0)


async def test_pacer_feeds_429s_to_the_adaptive_controller():
    clock = FakeClock()
    pacer = Pacer(rate=40.0, burst=4, max_in_flight=4, adaptive=True, clock=clock)
    pacer.on_result(429, 3.0)
    assert pacer.bucket.rate == pytest.approx(20.0)
    assert pacer.bucket.paused_until == pytest.approx(103.0)
    fixed = Pacer(rate=40.0, burst=4, max_in_flight=4, clock=clock)
    fixed.on_result(429, 3.0)
    assert fixed.bucket.rate == 40.0
