"""The work dir's error log (``WORK_DIR/errors``): every recorded failure, with its reason, secrets removed.

One writer for all failures: a request that failed for good (:class:`~dataset_builder.api.ApiClient`), a batch answer
that was invalid or missing (:class:`~dataset_builder.batch.BatchRunner`) and a video that could not be read or
annotated (:class:`~dataset_builder.annotate.Annotator`). Each line is
``{"time", "video_id", "stage", "kind", "reason", ...}``: requests add ``key`` and ``attempts``, videos add ``video``.
The reason has the API key (and anything that looks like a bearer token or an ``sk-`` key) removed, then is cut to
``MAX_REASON_CHARS``. The log is an append-only :class:`~dataset_builder.store.JsonlStore`, one file per shard.

Example:
    >>> import tempfile
    >>> from dataset_builder.error_log import ErrorLog
    >>> from dataset_builder.store import JsonlStore
    >>> log = ErrorLog(JsonlStore(tempfile.mkdtemp(), "shard-00000-of-00001"))
    >>> log.record("PMV/a", "api", "http_401", "HTTP 401: bad key sk-demo-0123456789", key="abc", attempts=1)
    >>> [(r["kind"], r["reason"], r["attempts"]) for r in log.records()]
    [('http_401', 'HTTP 401: bad key sk-***', 1)]
    >>> log.close()
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

from .store import JsonlStore

MAX_REASON_CHARS = 2000


def redact(text: str) -> str:
    """Remove the API key (and anything that looks like a bearer token or ``sk-`` key) from ``text``."""
    key = os.environ.get("OPENAI_API_KEY", "")
    if len(key) >= 4:
        text = text.replace(key, "***")
    text = re.sub(r"(?i)bearer\s+\S+", "Bearer ***", text)
    return re.sub(r"sk-[A-Za-z0-9_\-]{6,}", "sk-***", text)


class ErrorLog:
    """Appends failures to ``store`` (redacted, truncated, time-stamped) and reads back those of every shard."""

    def __init__(self, store: JsonlStore) -> None:
        self.store = store

    def record(self, video_id: str, stage: str, kind: str, reason: str, **fields: Any) -> None:
        """Append one failure; ``fields`` (e.g. ``key``, ``attempts``, ``video``) are stored as given."""
        self.store.append(
            {
                "time": time.time(),
                "video_id": video_id,
                "stage": stage,
                "kind": kind,
                "reason": redact(reason)[:MAX_REASON_CHARS],
                **fields,
            }
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """Every recorded failure of every shard in the directory."""
        return self.store.records()

    def close(self) -> None:
        self.store.close()
