"""One API budget for every worker: requests in flight, requests and tokens per minute, and ``Retry-After`` pauses.

:class:`RateLimit` is plain asyncio. Under ``annotate --engine ray`` it runs inside ONE Ray actor
(:func:`global_rate_limit`) that every API worker asks before each request, so N workers together send what one
account may, instead of N times it:

* ``acquire(tokens)`` waits until a request slot is free (at most ``concurrency`` in flight), the request bucket holds
  one request and the token bucket holds ``tokens``, then takes them and returns a lease id; ``release(lease)`` frees
  the slot. A lease expires after ``lease_seconds``, so a worker killed mid-request gives its slot back.
* The buckets refill continuously (``requests_per_minute / 60`` and ``tokens_per_minute / 60`` a second) and hold at
  most one second's worth (``burst_seconds``), as OpenAI enforces its per-minute limits over short windows. A request
  larger than a full token bucket waits for a full bucket and leaves it in debt, so it is never starved.
* ``pause(seconds)`` (a 429's ``Retry-After``) stops every ``acquire`` until then: all workers back off together.

Tokens per request follow OpenAI's own accounting: the prompt's estimate plus ``max_tokens``
(:meth:`dataset_builder.chat_requests.ChatRequest.estimated_tokens`).

Example::

    >>> import asyncio
    >>> from dataset_builder.rate_limit import RateLimit
    >>> async def two_requests():
    ...     limit = RateLimit(concurrency=1, requests_per_minute=6000)
    ...     first = await limit.acquire(100)
    ...     waiting = asyncio.ensure_future(limit.acquire(100))  # the one slot is taken
    ...     await asyncio.sleep(0.05)
    ...     blocked = not waiting.done()
    ...     await limit.release(first)
    ...     await limit.release(await waiting)
    ...     return blocked, limit.max_in_flight
    >>> asyncio.run(two_requests())
    (True, 1)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Protocol

DEFAULT_BURST_SECONDS = 1.0


class RateLimiter(Protocol):
    """What ``ApiClient(limiter=...)`` calls around each request: a local :class:`RateLimit` or a
    :class:`RemoteRateLimit` (the one shared by a Ray run's workers)."""

    async def acquire(self, tokens: int = 0) -> int: ...

    async def release(self, lease: int) -> None: ...

    async def pause(self, seconds: float) -> None: ...


class RateLimit:
    """Concurrency + requests/tokens-per-minute budget shared by all callers (see the module docstring).

    Args:
        concurrency: requests in flight at once, over all workers.
        requests_per_minute: the account's RPM limit; ``None``: unlimited.
        tokens_per_minute: the account's TPM limit; ``None``: unlimited.
        lease_seconds: a lease not released within this is freed (its worker died); set it above the request
            timeout.
        burst_seconds: the buckets hold this many seconds of the per-minute rates.
    """

    def __init__(
        self,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        lease_seconds: float = 600.0,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}.")
        for name, value in (
            ("--requests-per-minute", requests_per_minute),
            ("--tokens-per-minute", tokens_per_minute),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or left out for no limit), got {value}.")
        self.concurrency, self.lease_seconds = concurrency, lease_seconds
        self.rates = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self.capacity = {name: rate / 60 * burst_seconds for name, rate in self.rates.items() if rate is not None}
        self.level = dict(self.capacity)
        self.refilled = time.monotonic()
        self.paused_until = 0.0
        self.leases: dict[int, float] = {}
        self.ids = itertools.count()
        self.max_in_flight = 0
        self.pauses = 0
        self._changed: asyncio.Condition | None = None

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:  # made inside the running loop (a Ray actor's loop starts after __init__)
            self._changed = asyncio.Condition()
        return self._changed

    def _refill(self, now: float) -> None:
        elapsed, self.refilled = now - self.refilled, now
        for name, capacity in self.capacity.items():
            self.level[name] = min(capacity, self.level[name] + elapsed * self.rates[name] / 60)

    def _wait_seconds(self, tokens: int, now: float) -> float:
        """0 when a request of ``tokens`` may start now, else how long to wait at most before looking again."""
        for lease, expiry in list(self.leases.items()):
            if expiry <= now:
                del self.leases[lease]
        if now < self.paused_until:
            return self.paused_until - now
        if len(self.leases) >= self.concurrency:
            return min(self.leases.values()) - now
        waits = [0.0]
        for name, need in (("requests", 1), ("tokens", tokens)):
            if name in self.capacity:
                need = min(need, self.capacity[name])
                waits.append(max(0.0, need - self.level[name]) / (self.rates[name] / 60))
        return max(waits)

    async def acquire(self, tokens: int = 0) -> int:
        """Wait for a slot and the budget of one request of ``tokens`` tokens; returns the lease to release."""
        async with self.changed:
            while True:
                now = time.monotonic()
                self._refill(now)
                wait = self._wait_seconds(tokens, now)
                if wait <= 0:
                    break
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout=wait)
                except asyncio.TimeoutError:
                    pass
            for name, need in (("requests", 1), ("tokens", tokens)):
                if name in self.level:
                    self.level[name] -= need
            lease = next(self.ids)
            self.leases[lease] = now + self.lease_seconds
            self.max_in_flight = max(self.max_in_flight, len(self.leases))
            return lease

    async def release(self, lease: int) -> None:
        """Free the slot of ``lease`` (a lease that already expired is ignored)."""
        async with self.changed:
            self.leases.pop(lease, None)
            self.changed.notify_all()

    async def pause(self, seconds: float) -> None:
        """Stop every ``acquire`` for ``seconds`` from now (a 429's ``Retry-After``)."""
        async with self.changed:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            self.pauses += 1
            self.changed.notify_all()

    async def stats(self) -> dict[str, int]:
        """``{"max_in_flight", "pauses", "in_flight"}`` so far."""
        return {"max_in_flight": self.max_in_flight, "pauses": self.pauses, "in_flight": len(self.leases)}


class RemoteRateLimit:
    """The awaitable face of a :class:`RateLimit` running as a Ray actor (what ``ApiClient(limiter=...)`` takes)."""

    def __init__(self, actor) -> None:
        self.actor = actor

    async def acquire(self, tokens: int = 0) -> int:
        return await self.actor.acquire.remote(tokens)

    async def release(self, lease: int) -> None:
        await self.actor.release.remote(lease)

    async def pause(self, seconds: float) -> None:
        await self.actor.pause.remote(seconds)


def global_rate_limit(concurrency: int, requests_per_minute=None, tokens_per_minute=None, lease_seconds=600.0):
    """Start the one :class:`RateLimit` actor of a Ray run (``ray.init`` first); returns its actor handle.

    It takes no CPU (it only counts), and serves every worker's calls concurrently on its event loop.
    """
    import ray

    actor_class = ray.remote(num_cpus=0, max_concurrency=100_000, max_restarts=-1)(RateLimit)
    return actor_class.remote(concurrency, requests_per_minute, tokens_per_minute, lease_seconds)
