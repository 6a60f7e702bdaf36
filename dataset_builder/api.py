"""The paid-API edge: content-hash cache, bounded concurrency, retries, validation, error log, usage and cost.

Every request is keyed by ``sha256(model, prompt id@version, generation params, text, image identities)``. A valid
answer is appended to the cache (``work/api_cache``) the moment it returns, so re-runs never pay twice for finished
work. Transient failures (429, 5xx, 408/409, timeouts, connection errors) are retried with exponential backoff and full
jitter, honouring ``Retry-After``; malformed replies (any HTTP 200 that is not a usable chat completion: a body that
is not JSON, no ``choices``, no ``message``, no ``content``) and schema-invalid answers are retried
``max_invalid_retries`` times. A request that still fails is appended to ``work/errors`` with its reason and raises :class:`RequestFailed` -- the
caller records the video as failed and the run goes on. The API key is read from ``OPENAI_API_KEY`` by the ``openai``
client and redacted from every stored or printed message. Chat completions are posted through one ``aiohttp`` session
per event loop (64 requests in flight at 200 ms latency reach 0.93 of concurrency / latency on 2 cores); with a
``limiter`` (:mod:`dataset_builder.rate_limit`) every request also waits for the budget shared by all workers, and a
429's ``Retry-After`` pauses all of them.

Example (``dry_run=True`` plans and prices without a key or a server; drop it and pass ``base_url`` to call a local
OpenAI-compatible server, or nothing for OpenAI itself)::

    >>> import asyncio, tempfile
    >>> from dataset_builder.api import ApiClient, ChatRequest, ResponseSpec
    >>> from dataset_builder.prompts import load_prompt
    >>> from dataset_builder.store import JsonlStore
    >>> work = tempfile.mkdtemp()
    >>> client = ApiClient(JsonlStore(f"{work}/api_cache", "s0"), JsonlStore(f"{work}/errors", "s0"),
    ...                    model="gpt-4o", concurrency=8, dry_run=True)
    >>> request = ChatRequest("video_caption", "PMV/a", load_prompt("video_caption"), "[0s - 9s] A dog runs.",
    ...                       ResponseSpec("text"))
    >>> asyncio.run(client.complete(request)).startswith("(dry run)")
    True
    >>> client.usage.stages["video_caption"].requests
    1
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import aiohttp
import openai

from .chat_requests import (
    INVALID_KINDS,
    BatchPending,
    ChatRequest,
    OversizedAnswer,
    RequestFailed,
    ResponseSpec,
    _tokens,
    completion_answer,
    retry_after_seconds,
)
from .error_log import ErrorLog, redact
from .limits import DEFAULT_IMAGE_DETAIL, MAX_CHARS_PER_TOKEN, stage_max_tokens
from .rate_limit import RateLimiter
from .schemas import ResponseValidationError
from .store import JsonlStore
from .usage import BATCH_DISCOUNT, UsageTracker

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429}


# What the ``openai`` client reads from the environment; a Ray run hands these to its API workers.
OPENAI_ENVIRONMENT = ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_BASE_URL")


def require_api_key(dry_run: bool = False) -> None:
    """Raise the ``ValueError`` that says how to set the key, unless it is set (or nothing is called)."""
    if not dry_run and not os.environ.get("OPENAI_API_KEY"):
        raise ValueError("Set the OPENAI_API_KEY environment variable (any value, e.g. EMPTY, for a local server).")


class ApiClient:
    """Cached, bounded, retrying chat-completion client (see module docstring)."""

    def __init__(
        self,
        cache: JsonlStore,
        errors: JsonlStore,
        *,
        model: str = "gpt-4o",
        base_url: str | None = None,
        concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 6,
        max_invalid_retries: int = 2,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_tokens: int | dict[str, int] | None = None,
        temperature: float = 0.2,
        image_detail: str = DEFAULT_IMAGE_DETAIL,
        dry_run: bool = False,
        batch: bool = False,
        price: tuple[float, float] | None = None,
        response_format: str = "json_schema",
        limiter: RateLimiter | None = None,
    ) -> None:
        if response_format not in ("json_schema", "json_object"):
            raise ValueError(f"response_format must be 'json_schema' or 'json_object', got {response_format!r}.")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}.")
        require_api_key(dry_run)
        self.cache_store, self.error_log = cache, ErrorLog(errors)
        self.cache = cache.load_index("key")
        self.params = {"model": model, "temperature": temperature, "image_detail": image_detail}
        self.max_tokens = stage_max_tokens(max_tokens)
        self.structured = response_format == "json_schema"  # until the server refuses json_schema once
        self.max_retries, self.max_invalid_retries = max_retries, max_invalid_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.dry_run, self.batch = dry_run, batch
        self.usage = UsageTracker(model, price, BATCH_DISCOUNT if batch else 1.0, estimated=dry_run)
        self._queued: dict[str, tuple[ChatRequest, dict[str, Any]]] = {}
        self._batch_failures: dict[str, int] = defaultdict(int)
        for record in self.error_log.records():
            if record.get("kind") in ("invalid_batch_answer", "batch_error"):
                self._batch_failures[record["key"]] += 1
        self.concurrency, self._base_url, self._timeout = concurrency, base_url, timeout
        self.limiter = limiter
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._session: aiohttp.ClientSession | None = None

    def _bind(self) -> None:
        """The HTTP clients and the semaphore belong to one event loop: make them for the running one.

        Chat completions go through one ``aiohttp`` session (a few hundred microseconds of CPU a request; the
        ``openai`` client's connection pool cost ~3 ms, which capped 64 requests in flight at 0.7 of concurrency /
        latency); its URL and headers (key, organization, project) are the ``openai`` client's, which the Batch API
        calls use."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._client = openai.AsyncOpenAI(base_url=self._base_url, max_retries=0, timeout=self._timeout)
            headers = {**self._client.default_headers, **self._client.auth_headers}
            self._headers = {name: value for name, value in headers.items() if isinstance(value, str)}
            self._chat_url = str(self._client.base_url).rstrip("/") + "/chat/completions"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )

    def close(self) -> None:
        """fsync and close the answer cache and the error log (both can be appended to again later)."""
        self.cache_store.close()
        self.error_log.close()

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (call before the loop ends)."""
        if self._loop is asyncio.get_running_loop() and self._client is not None:
            await self._client.close()
            await self._session.close()
            self._loop = self._client = self._session = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The ``openai`` client of the running event loop (the key comes from ``OPENAI_API_KEY``)."""
        self._bind()
        return self._client

    def _record_failure(self, stage: str, video_id: str, key: str, kind: str, reason: str, attempts: int) -> None:
        """Count a request that failed for good and append it to the error log."""
        self.usage.stages[stage].failed += 1
        self.error_log.record(video_id, stage, kind, reason, key=key, attempts=attempts)

    def queued_for_batch(self) -> dict[str, tuple[ChatRequest, dict[str, Any]]]:
        """Batch mode: the requests queued since the last submission, ``{key: (request, JSON body)}`` (a copy)."""
        return {
            key: (request, self._in_current_format(request, body)) for key, (request, body) in self._queued.items()
        }

    def _in_current_format(self, request: ChatRequest, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the ``response_format`` of now (JSON mode once the server refused json_schema)."""
        response_format = request.spec.response_format(self.structured)
        return body if response_format is None else {**body, "response_format": response_format}

    def refuses_json_schema(self, status: int, message: str, sent_format: str | None) -> bool:
        """Whether an error answers a Structured Outputs request (``sent_format == "json_schema"``) with "not
        supported". The first one switches this client to JSON mode for the rest of the run (a warning says so)."""
        text = message.lower()
        if not (
            sent_format == "json_schema"
            and status in (400, 422)
            and ("json_schema" in text or "response_format" in text)
        ):
            return False
        if self.structured:
            self.structured = False
            logger.warning(
                "The server refused Structured Outputs (%s); using JSON mode for this run.", redact(message)
            )
        return True

    def mark_submitted(self, keys: Iterable[str]) -> None:
        """Batch mode: these queued requests are in a submitted batch; stop queueing them."""
        for key in keys:
            self._queued.pop(key, None)

    def record_batch_failure(self, key: str, stage: str, video_id: str, kind: str, reason: str) -> None:
        """Batch mode: an answer that came back invalid or not at all; after ``max_invalid_retries`` such failures
        the request raises :class:`RequestFailed` instead of being queued again."""
        self._batch_failures[key] += 1
        self._record_failure(stage, video_id, key, kind, reason, attempts=self._batch_failures[key])

    def store_answer(
        self,
        stage: str,
        prompt_tag: str,
        spec: ResponseSpec,
        key: str,
        content: str,
        usage: dict,
        response_id: str = "",
        video_id: str = "",
        frames: int = 0,
    ) -> Any:
        """Validate ``content``; a valid answer is appended to the cache first, then its tokens are counted.

        Raises:
            ResponseValidationError: the answer is invalid (it is not cached).
        """
        self.check_size(stage, content)
        parsed, problems = spec.parse_with_problems(content)
        self.cache[key] = {
            "key": key, "stage": stage, "prompt": prompt_tag, "content": content, "usage": usage, "response_id": response_id
        }  # fmt: skip
        self.cache_store.append(self.cache[key])
        counts = self.usage.stages[stage]
        counts.requests += 1
        counts.frames += frames
        counts.prompt_tokens += _tokens(usage, "prompt_tokens")
        counts.completion_tokens += _tokens(usage, "completion_tokens")
        if problems:  # kept, not retried: the valid items were paid for
            self.error_log.record(video_id, stage, "qa_items_dropped", "; ".join(problems), key=key)
        return parsed

    def params_for(self, stage: str) -> dict[str, Any]:
        """The generation parameters of a request of ``stage`` (they enter its cache key and its body)."""
        if stage not in self.max_tokens:
            raise ValueError(f"Unknown stage {stage!r}; the stages are {sorted(self.max_tokens)}.")
        return {**self.params, "max_tokens": self.max_tokens[stage]}

    def check_size(self, stage: str, content: str) -> None:
        """Raise :class:`OversizedAnswer` when ``content`` is longer than ``stage`` allows."""
        limit = self.max_tokens[stage] * MAX_CHARS_PER_TOKEN
        if len(content) > limit:
            raise OversizedAnswer(
                f"the answer has {len(content)} characters, longer than the {limit} characters a {stage} answer may "
                f"have ({self.max_tokens[stage]} max_tokens x {MAX_CHARS_PER_TOKEN}): the server ignored max_tokens"
            )

    def _cached(self, request: ChatRequest, key: str) -> dict[str, Any] | None:
        """The cached answer of ``key``; one that is too long (cached before the size limit) does not count."""
        cached = self.cache.get(key)
        if cached is None or len(cached["content"]) > self.max_tokens[request.stage] * MAX_CHARS_PER_TOKEN:
            return None
        return cached

    def is_cached(self, request: ChatRequest) -> bool:
        key = request.key(self.params_for(request.stage))
        return self._cached(request, key) is not None

    async def complete(self, request: ChatRequest) -> Any:
        """The parsed answer (a caption string, or a list of QA dicts). Raises RequestFailed / BatchPending."""
        params = self.params_for(request.stage)
        key = request.key(params)
        cached = self._cached(request, key)
        if cached is not None:
            self.usage.stages[request.stage].cached += 1
            return request.spec.parse(cached["content"])
        if self.dry_run:
            stage = self.usage.stages[request.stage]
            prompt, out = request.estimated_tokens(self.params["image_detail"])
            stage.requests += 1
            stage.frames += len(request.image_ids)
            stage.prompt_tokens += prompt
            stage.completion_tokens += out
            return request.spec.placeholder()
        if self.batch:
            if self._batch_failures[key] > self.max_invalid_retries:
                raise RequestFailed(
                    f"{request.stage}: answers stayed invalid after {self._batch_failures[key]} batch tries",
                    "invalid_batch_answer",
                )
            if key not in self._queued:
                jpegs = await asyncio.to_thread(request.images) if request.images else []
                self._queued[key] = (request, request.body(params, jpegs, self.structured))
            raise BatchPending(key)
        jpegs = await asyncio.to_thread(request.images) if request.images else []
        return await self._call(request, key, params, jpegs)

    async def _post(self, body: dict[str, Any]) -> tuple[int, Any, str]:
        """``POST /chat/completions`` on the loop's session: ``(status, headers, body text)``."""
        self._bind()
        async with self._session.post(self._chat_url, data=json.dumps(body).encode(), headers=self._headers) as reply:
            return reply.status, reply.headers, await reply.text()

    async def _limited_post(self, request: ChatRequest, body: dict[str, Any]) -> tuple[dict[str, Any], int, Any, str]:
        """``_post`` inside this client's concurrency bound and, when set, the shared limiter's budget; returns the
        body as sent and the reply. The ``response_format`` is chosen once a slot is free (a refusal of json_schema
        while this request waited switches it too); a retryable reply with ``Retry-After`` pauses the limiter before
        this request's slot is freed, so no worker slips in."""
        async with self._semaphore:
            body = self._in_current_format(request, body)
            if self.limiter is None:
                return body, *await self._post(body)
            prompt_tokens, _ = request.estimated_tokens(self.params["image_detail"])
            lease = await self.limiter.acquire(prompt_tokens + body["max_tokens"])
            try:
                status, headers, text = await self._post(body)
                delay = retry_after_seconds(headers) if status in RETRYABLE_STATUS or status >= 500 else None
                if delay is not None:
                    await self.limiter.pause(delay)
                return body, status, headers, text
            finally:
                await self.limiter.release(lease)

    async def _call(self, request: ChatRequest, key: str, params: dict[str, Any], jpegs: list[bytes]) -> Any:
        transient = invalid = 0
        body = request.body(params, jpegs, self.structured)
        while True:
            attempts = transient + invalid + 1
            delay = None
            try:
                self._bind()
                body, status, headers, text = await self._limited_post(request, body)
                if status == 200:
                    # Any 200 that is not a usable completion is a malformed answer, never a crash.
                    content, usage, response_id = completion_answer(text)
                    return self.store_answer(
                        request.stage, request.prompt.tag, request.spec, key, content, usage, response_id,
                        request.video_id, len(request.image_ids),
                    )  # fmt: skip
                message = error_message(text)
                if self.refuses_json_schema(status, message, (body.get("response_format") or {}).get("type")):
                    continue  # the same request in JSON mode; not a failed attempt
                retryable = status in RETRYABLE_STATUS or status >= 500
                transient += retryable
                kind, reason = f"http_{status}", f"HTTP {status}: {message}"
                retry = retryable and transient <= self.max_retries
                delay = retry_after_seconds(headers) if retryable else None
            except ResponseValidationError as error:
                invalid += 1
                kind = INVALID_KINDS.get(type(error), "invalid_answer")
                reason, retry = str(error), invalid <= self.max_invalid_retries
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                transient += 1
                kind, reason, retry = "connection", f"{type(error).__name__}: {error}", transient <= self.max_retries
            if not retry:
                self._record_failure(request.stage, request.video_id, key, kind, reason, attempts)
                raise RequestFailed(f"{request.stage} failed after {attempts} attempt(s): {redact(reason)}", kind)
            if delay is None:
                delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1)))
            else:
                delay += random.uniform(0, 0.1 * delay)
            await asyncio.sleep(delay)


def error_message(text: str) -> str:
    """The ``error.message`` of an OpenAI error body (with its ``param`` when it names one), else the body's text.

    >>> error_message('{"error": {"message": "Invalid parameter", "param": "response_format"}}')
    'Invalid parameter (param: response_format)'
    >>> error_message("<html>Bad gateway</html>")
    '<html>Bad gateway</html>'
    """
    try:
        error = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return text.strip()[:2000]
    return error["message"] + (f" (param: {error['param']})" if error.get("param") else "")
