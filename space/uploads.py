"""A bounded upload folder for the Space: nobody can fill the disk through gradio's upload endpoint.

gradio keeps every file POSTed to `/gradio_api/upload` in `GRADIO_TEMP_DIR` (even one never sent with a chat
message) until its hourly cache sweep. `UploadFolder` bounds that folder:

- a total size quota: before and after every upload the least recently used files are removed until the folder
  fits (an upload that cannot fit even then is refused with HTTP 507), never a file a running request is reading;
- files no chat request has used are removed after `orphan_seconds`;
- the files a browser session used are removed when that session ends (its tab closes).

    >>> folder = UploadFolder("/tmp/uploads", quota_bytes=4 * 2**30, orphan_seconds=600)  # doctest: +SKIP
    >>> demo.launch(app_kwargs={"middleware": [folder.middleware()]})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger("prolongvid.space")

UPLOAD_ROUTE_SUFFIX = "/upload"
UNITS = {"kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40, "b": 1}


def parse_size(text: str) -> int:
    """`"4gb"` -> 4294967296 (units b, kb, mb, gb, tb; case-insensitive), as gradio's `max_file_size` reads them."""
    value = text.strip().lower()
    unit = next((unit for unit in UNITS if value.endswith(unit)), "")
    number, factor = (value[: -len(unit)].strip(), UNITS[unit]) if unit else (value, 1)
    try:
        return int(float(number) * factor)
    except ValueError:
        raise ValueError(f"cannot read the size {text!r}: write it like '4gb', '500mb' or '1048576'") from None


class UploadFolder:
    """Keeps the files under `root` within `quota_bytes`, oldest use first; see the module docstring."""

    def __init__(self, root: str | os.PathLike, quota_bytes: int, orphan_seconds: float):
        if quota_bytes <= 0:
            raise ValueError(f"the upload quota must be positive, got {quota_bytes} bytes")
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self.orphan_seconds = orphan_seconds
        self._lock = threading.Lock()
        self._in_use: Counter[Path] = Counter()
        self._last_use: dict[Path, float] = {}
        self._sessions: defaultdict[str, set[Path]] = defaultdict(set)

    def _resolve(self, path: str | os.PathLike) -> Path | None:
        resolved = Path(path).resolve()
        return resolved if resolved.is_relative_to(self.root.resolve()) else None

    @contextmanager
    def use(self, path: str | os.PathLike, session: str | None = None) -> Iterator[None]:
        """Mark `path` as being read (never evicted meanwhile) and as used by `session`."""
        resolved = self._resolve(path)
        if resolved is None:  # an example file or a local path: not ours to manage
            yield
            return
        with self._lock:
            self._in_use[resolved] += 1
            self._last_use[resolved] = time.time()
            if session:
                self._sessions[session].add(resolved)
        try:
            yield
        finally:
            with self._lock:
                self._in_use[resolved] -= 1
                self._last_use[resolved] = time.time()

    def release_session(self, session: str | None) -> None:
        """Remove the files only `session` used (called when its browser tab closes)."""
        with self._lock:
            files = self._sessions.pop(session, set()) if session else set()
            still_used = set().union(*self._sessions.values()) if self._sessions else set()
            for path in files - still_used:
                if not self._in_use[path]:
                    self._remove(path, "its session ended")

    def _files(self) -> list[tuple[float, int, Path]]:
        """`(last use, size, path)` of every file under the root, oldest first."""
        entries = []
        for path in self.root.rglob("*"):
            try:
                stat = path.stat()
            except OSError:  # removed meanwhile
                continue
            if path.is_file():
                resolved = path.resolve()
                entries.append((self._last_use.get(resolved, stat.st_mtime), stat.st_size, resolved))
        return sorted(entries)

    def _remove(self, path: Path, reason: str) -> int:
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            return 0
        self._last_use.pop(path, None)
        logger.info("removed upload %s (%s)", path.name, reason)
        return size

    def enforce(self, incoming_bytes: int = 0) -> bool:
        """Remove orphans, then least recently used files until `incoming_bytes` more fit. Returns whether they do."""
        with self._lock:
            now = time.time()
            files = self._files()
            total = sum(size for _, size, _ in files)
            used = set(self._last_use)
            for last, _, path in files:
                if path not in used and now - last > self.orphan_seconds and not self._in_use[path]:
                    total -= self._remove(path, "never used by a chat request")
            for _, _, path in self._files():
                if total + incoming_bytes <= self.quota_bytes:
                    break
                if not self._in_use[path]:
                    total -= self._remove(path, "upload quota reached")
            return total + incoming_bytes <= self.quota_bytes

    def middleware(self):
        """A Starlette `Middleware` for `launch(app_kwargs={"middleware": [...]})` that enforces the quota around
        every request to gradio's upload endpoint."""
        from starlette.middleware import Middleware

        return Middleware(_UploadQuotaMiddleware, folder=self)


class _UploadQuotaMiddleware:
    """ASGI middleware: makes room before an upload (refusing it with 507 when it cannot fit) and trims after."""

    def __init__(self, app, folder: UploadFolder):
        self.app = app
        self.folder = folder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith(UPLOAD_ROUTE_SUFFIX) or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = int(headers.get(b"content-length", b"0") or 0)
        if not self.folder.enforce(incoming):
            from starlette.responses import PlainTextResponse

            response = PlainTextResponse(
                "The Space's upload folder is full (its quota is in use by running requests): try again in a minute.",
                status_code=507,
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.folder.enforce()
