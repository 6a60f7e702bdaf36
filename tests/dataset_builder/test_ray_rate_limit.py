"""The global rate limit on its own (plain asyncio; under Ray it runs in one actor): RPM, TPM, leases, pauses."""

import asyncio
import time

import pytest

from dataset_builder.rate_limit import RateLimit


def timed(coroutine_fn):
    async def run():
        start = time.monotonic()
        result = await coroutine_fn()
        return result, time.monotonic() - start

    return asyncio.run(run())


def test_requests_per_minute_spaces_requests_after_a_one_second_burst():
    limit = RateLimit(concurrency=100, requests_per_minute=1200)  # 20 a second, a bucket of 20

    async def thirty():
        for _ in range(30):
            await limit.release(await limit.acquire())

    _, seconds = timed(thirty)
    assert 10 / 20 - 0.05 <= seconds <= 10 / 20 + 0.3  # 20 at once, then 10 at 20 a second


def test_tokens_per_minute_counts_each_requests_tokens_and_a_huge_request_is_not_starved():
    limit = RateLimit(concurrency=100, tokens_per_minute=6000)  # 100 tokens a second, a bucket of 100

    async def requests():
        for tokens in (50, 50, 50, 50):  # 100 at once, then 50 every 0.5 s
            await limit.release(await limit.acquire(tokens))
        await limit.release(await limit.acquire(1000))  # larger than the bucket: waits for a full one, not forever

    _, seconds = timed(requests)
    assert 1.0 + 1.0 - 0.05 <= seconds <= 2.0 + 0.4


def test_a_lease_never_released_frees_its_slot_after_lease_seconds():
    limit = RateLimit(concurrency=1, lease_seconds=0.3)

    async def two():
        await limit.acquire()  # its worker "dies": never released
        return await limit.acquire()

    _, seconds = timed(two)
    assert 0.3 - 0.02 <= seconds <= 0.6


def test_pause_holds_every_acquire_and_longer_pauses_win():
    limit = RateLimit(concurrency=10)

    async def paused():
        await limit.pause(0.4)
        await limit.pause(0.1)  # a shorter Retry-After does not shorten the pause
        waiting = [asyncio.ensure_future(limit.acquire()) for _ in range(3)]
        await asyncio.sleep(0.3)
        held = not any(task.done() for task in waiting)
        await asyncio.gather(*waiting)
        return held

    held, seconds = timed(paused)
    assert held and 0.4 - 0.02 <= seconds <= 0.7 and limit.pauses == 2


@pytest.mark.parametrize(("option", "kwargs"), [("--requests-per-minute", {"requests_per_minute": 0}),
                                                ("--tokens-per-minute", {"tokens_per_minute": -5})])  # fmt: skip
def test_limits_must_be_positive(option, kwargs):
    with pytest.raises(ValueError, match=option):
        RateLimit(concurrency=4, **kwargs)
