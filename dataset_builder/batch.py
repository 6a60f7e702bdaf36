"""``--batch``: the OpenAI Batch API (half price) as submit -> poll -> collect rounds, resumable.

The pipeline runs in passes. In batch mode a cache miss does not call the API: the request is queued
(:class:`~dataset_builder.api.BatchPending`) and the video waits. After a pass, the queued requests are uploaded as one
JSONL file (``purpose="batch"``), a batch is created on ``/v1/chat/completions``, and its id is appended to
``WORK_DIR/batches`` *before* polling, so a killed run resumes by polling the same batch instead of paying again.
Collected answers are validated into the API cache exactly like live answers; invalid answers and per-request batch
errors go to the errors file and are re-queued in the next pass, at most ``max_invalid_retries`` times. Passes repeat
until nothing is queued (a long video needs three: segment captions, video caption, QA).

Example (needs a server with the Files and Batches endpoints, e.g. OpenAI; ``api`` is an
:class:`~dataset_builder.api.ApiClient` made with ``batch=True``)::

    >>> runner = BatchRunner(api, "work", "shard-00000-of-00001", poll_interval=60)  # doctest: +SKIP
    >>> asyncio.run(runner.collect_open())  # resume: collect what an earlier run submitted  # doctest: +SKIP
    0
    >>> asyncio.run(runner.submit_and_collect())  # doctest: +SKIP
    'batch_abc123'
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from .api import ApiClient, ResponseSpec, completion_answer
from .schemas import ResponseValidationError
from .store import JsonlStore

TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchRunner:
    """Submits the requests an :class:`~dataset_builder.api.ApiClient` queued in batch mode, and collects answers."""

    def __init__(self, api: ApiClient, work_dir: str | Path, shard_name: str, poll_interval: float = 30.0) -> None:
        self.api = api
        self.store = JsonlStore(Path(work_dir) / "batches", shard_name)
        self.poll_interval = poll_interval

    def open_batches(self) -> list[dict]:
        """Submitted batches of this work dir that were never collected."""
        records = list(self.store.records())
        collected = {r["batch_id"] for r in records if r["event"] == "collected"}
        return [r for r in records if r["event"] == "submitted" and r["batch_id"] not in collected]

    async def collect_open(self) -> int:
        """Resume: poll and collect every open batch; returns how many were collected."""
        open_batches = self.open_batches()
        for record in open_batches:
            await self._wait_and_collect(record)
        return len(open_batches)

    async def submit_and_collect(self) -> str | None:
        """Submit everything the client queued as one batch, wait for it and collect it; returns the batch id."""
        queued = self.api.queued_for_batch()
        if not queued:
            return None
        client = self.api.client
        lines = [
            json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body})
            for key, (_, body) in queued.items()
        ]
        upload = await client.files.create(
            file=("requests.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        requests = {
            key: {
                "stage": r.stage,
                "video_id": r.video_id,
                "prompt": r.prompt.tag,
                "kind": r.spec.kind,
                "task_types": list(r.spec.task_types),
                "response_format": (body.get("response_format") or {}).get("type"),
                "frames": len(r.image_ids),
            }
            for key, (r, body) in queued.items()
        }
        record = {
            "event": "submitted",
            "batch_id": batch.id,
            "input_file_id": upload.id,
            "time": time.time(),
            "requests": requests,
        }
        self.store.append(record)
        self.api.mark_submitted(queued)
        await self._wait_and_collect(record)
        return batch.id

    async def _wait_and_collect(self, record: dict) -> None:
        client = self.api.client
        while True:
            batch = await client.batches.retrieve(record["batch_id"])
            if batch.status in TERMINAL:
                break
            await asyncio.sleep(self.poll_interval)
        requests = record["requests"]
        answered: set[str] = set()
        if batch.output_file_id:
            text = (await client.files.content(batch.output_file_id)).text
            for line in filter(None, text.splitlines()):
                self._collect_line(json.loads(line), requests, answered)
        if batch.error_file_id:
            text = (await client.files.content(batch.error_file_id)).text
            for line in filter(None, text.splitlines()):
                self._collect_line(json.loads(line), requests, answered)
        for key in set(requests) - answered:
            self._fail(key, requests[key], f"batch {record['batch_id']} ended {batch.status} without an answer")
        self.store.append(
            {"event": "collected", "batch_id": record["batch_id"], "status": batch.status, "time": time.time()}
        )

    def _collect_line(self, line: dict, requests: dict, answered: set[str]) -> None:
        key = line.get("custom_id")
        if key not in requests:
            return
        answered.add(key)
        meta = requests[key]
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            status, message = response.get("status_code"), _error_message(line)
            if self.api.refuses_json_schema(status or 0, message, meta.get("response_format")):
                message += " (asked again in JSON mode)"
            return self._fail(key, meta, f"batch error: {status} {message}")
        spec = ResponseSpec(meta["kind"], tuple(meta["task_types"]))
        try:
            content, usage, response_id = completion_answer(response.get("body"))
            self.api.store_answer(
                meta["stage"], meta["prompt"], spec, key, content, usage, response_id, meta["video_id"],
                meta.get("frames", 0),
            )  # fmt: skip
        except ResponseValidationError as error:
            self._fail(key, meta, f"invalid answer: {error}", kind="invalid_batch_answer")

    def _fail(self, key: str, meta: dict, reason: str, kind: str = "batch_error") -> None:
        self.api.record_batch_failure(key, meta["stage"], meta["video_id"], kind, reason)

    def close(self) -> None:
        self.store.close()


def _error_message(line: dict) -> str:
    """The error message of a failed batch line: its ``error``, or the error object of its response body."""
    body = (line.get("response") or {}).get("body")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(line.get("error") or body or "no answer")
