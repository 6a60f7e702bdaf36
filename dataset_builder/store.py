"""Append-only, crash-safe JSON-lines stores for the work dir (API cache, local-stage cache, annotations, errors).

Each process writes only its own file (``<dir>/<name>.jsonl``, ``name`` = the shard, e.g. ``shard-00000-of-00004``)
and reads every ``*.jsonl`` in the directory, so shards never contend and a single-machine re-run sees all of them.
A record is written as one ``os.write`` of a complete line on an ``O_APPEND`` descriptor: once ``append`` returns the
line is in the kernel, so it survives the process dying (even ``kill -9``), and only a line being written at that
moment can be torn. Against power loss the file is ``fsync``-ed by a background thread every ``fsync_interval``
seconds and on ``close`` (group commit: a per-record fsync in the event loop capped the API rate at ~60 requests/s
here); ``fsync_interval=0`` fsyncs every record. A torn tail is cut off when the file is next opened for
writing, and skipped when read, so a partial write never corrupts the store.

Example:
    >>> import tempfile
    >>> from dataset_builder.store import JsonlStore
    >>> store = JsonlStore(tempfile.mkdtemp(), "shard-00000-of-00001")
    >>> store.append({"key": "abc", "value": 1})
    >>> JsonlStore(store.directory, "other").load_index("key")["abc"]["value"]
    1
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlStore:
    """One append-only JSONL file per writer inside ``directory``; reads cover all files of the directory."""

    def __init__(self, directory: str | os.PathLike, name: str, fsync_interval: float = 0.5) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{name}.jsonl"
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._syncer: threading.Thread | None = None

    def _sync_loop(self) -> None:
        while not self._closed.wait(self.fsync_interval):
            if self._dirty.is_set():
                with self._lock:
                    self._dirty.clear()
                    if self._fd is not None:
                        os.fsync(self._fd)

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def append(self, record: dict[str, Any]) -> None:
        """Durably append one record (a JSON-serialisable dict)."""
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
        with self._lock:
            fd = self._open()
            os.write(fd, line)
            if self.fsync_interval <= 0:
                os.fsync(fd)
            else:
                self._dirty.set()
                if self._syncer is None:
                    self._syncer = threading.Thread(
                        target=self._sync_loop, daemon=True, name=f"fsync-{self.path.name}"
                    )
                    self._syncer.start()

    def records(self) -> Iterator[dict[str, Any]]:
        """All complete records of every file in the directory (torn lines skipped), files in name order."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            with open(path, "rb") as handle:
                for raw in handle:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        yield json.loads(raw)
                    except json.JSONDecodeError:
                        continue

    def load_index(self, key: str) -> dict[str, dict[str, Any]]:
        """``{record[key]: record}`` over all records; later records win."""
        return {record[key]: record for record in self.records() if key in record}

    def close(self) -> None:
        """fsync and close the file (the store can be appended to again later)."""
        self._closed.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
        self._closed.clear()


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file to its last complete line (the only damage an interrupted append can leave)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = handle.seek(0) or handle.read()
        handle.truncate(data.rfind(b"\n") + 1)
