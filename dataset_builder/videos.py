"""Video inputs: the manifest, deterministic sharding, cheap content fingerprints and lazy 1-fps frame access.

Inputs (``--videos``):
    * a directory: every video file below it (``.mp4 .mkv .webm .mov .avi .ts .m4v .flv``); the source is the first
      sub-folder name (``DIR/<source>/...``), else ``unknown``; the id is the path relative to ``DIR`` without suffix.
    * a ``.jsonl`` manifest, one ``{"path": ..., "source": ..., "video_id": ...}`` per line (only ``path`` required),
      a ``.csv`` with the same columns, or a ``.txt`` with one path per line. Relative paths are relative to the
      manifest. Sources are free labels (PMV, SA-V, VIDAL, YouTube-8M, ...).

Example (listing reads only names; the files here are empty)::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from dataset_builder.videos import list_videos, shard_items
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("PMV/a.mp4", "PMV/b.mkv", "SA-V/c.webm", "notes.txt"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     (root / name).touch()
    >>> items = list_videos(root)
    >>> [(item.video_id, item.source) for item in items]
    [('PMV/a', 'PMV'), ('PMV/b', 'PMV'), ('SA-V/c', 'SA-V')]
    >>> sum(len(shard_items(items, index, count=2)) for index in range(2))  # every video in exactly one shard
    3
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".ts", ".m4v", ".flv"}


@dataclass(frozen=True)
class VideoItem:
    """One input video: ``path`` is absolute; ``relative`` is its path relative to the videos root (the ``--videos``
    directory or the manifest's folder; the file name alone for a file outside it), what published tables store."""

    video_id: str
    path: str
    source: str
    relative: str = ""


def list_videos(videos: str | os.PathLike) -> list[VideoItem]:
    """Read a directory or manifest into items sorted by id; duplicate ids are an error."""
    root = Path(videos)
    if root.is_dir():
        items = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()):
            relative = path.relative_to(root)
            source = relative.parts[0] if len(relative.parts) > 1 else "unknown"
            items.append(
                VideoItem(relative.with_suffix("").as_posix(), str(path.resolve()), source, relative.as_posix())
            )
    elif root.is_file():
        items = [_item(row, root.parent, root) for row in _manifest_rows(root)]
    else:
        raise ValueError(f"--videos {root} is neither a directory nor a manifest file (.jsonl, .csv or .txt).")
    seen: set[str] = set()
    for item in items:
        if item.video_id in seen:
            raise ValueError(f"Duplicate video_id {item.video_id!r} in {root}; give each video a unique video_id.")
        seen.add(item.video_id)
    return sorted(items, key=lambda item: item.video_id)


def _manifest_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if suffix == ".csv":
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    if suffix == ".txt":
        return [{"path": line.strip()} for line in path.read_text().splitlines() if line.strip()]
    raise ValueError(f"Unknown manifest type {path.suffix!r} for {path}; use .jsonl, .csv or .txt.")


def _item(row: dict, base: Path, manifest: Path) -> VideoItem:
    location = row.get("path") or row.get("video")
    if not location:
        raise ValueError(f"A row of {manifest} has no 'path' (or 'video') field: {row}.")
    path = (base / location).resolve()
    root = base.resolve()
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return VideoItem(str(row.get("video_id") or path.stem), str(path), str(row.get("source") or "unknown"), relative)


def shard_items(items: list[VideoItem], index: int, count: int) -> list[VideoItem]:
    """Items whose ``sha256(video_id) % count == index``: stable under re-ordering and additions to the list."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard must be I/N with 0 <= I < N, got {index}/{count}.")
    return [item for item in items if int(hashlib.sha256(item.video_id.encode()).hexdigest(), 16) % count == index]


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/8"`` -> ``(3, 8)``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}.") from None
    shard_items([], index, count)
    return index, count


def fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content fingerprint: sha256 of the size, the first and the last MiB (cheap on multi-GB files)."""
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes).")
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        handle.seek(max(0, size - chunk))
        digest.update(handle.read(chunk))
    return digest.hexdigest()[:24]


def decode_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(height, width)`` keeping the aspect ratio with the long side at most ``long_side`` (even numbers)."""
    scale = min(1.0, long_side / max(width, height))
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    """One ``(H, W, 3) uint8`` frame as the JPEG sent to the API."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def nearest_frame(times: np.ndarray, t: float) -> int:
    """Index of the decoded frame whose timestamp (``times (T,)``) is nearest ``t``."""
    return int(np.argmin(np.abs(times - t)))


class FrameProvider:
    """Decodes one video at 1 fps on first use (thread-safe, memoised) and serves frames and JPEG bytes.

    ``frames()`` -> ``(frames (T, H, W, 3) uint8, timestamps (T,) float64)``; ``jpegs(ts)`` encodes the sampled frame
    nearest each requested time. ``release()`` drops the decoded array and keeps the encoded JPEGs. With a
    ``frame_cache`` (a ``processing.frame_cache.FrameCacheWriter``) the decoded frames are also stored there under
    ``video_id``, so training never decodes this video again.
    """

    def __init__(
        self,
        path: str,
        size: tuple[int, int],
        fps: float = 1.0,
        jpeg_quality: int = 90,
        frame_cache=None,
        video_id: str | None = None,
    ) -> None:
        self.path, self.size, self.fps, self.jpeg_quality = path, size, fps, jpeg_quality
        self.frame_cache, self.video_id = frame_cache, video_id
        self._lock = threading.Lock()
        self._frames: tuple[np.ndarray, np.ndarray] | None = None
        self._jpegs: dict[float, bytes] = {}

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        from processing import load_video

        with self._lock:
            if self._frames is None and self.frame_cache is not None:  # one decode: cache filled, frames returned
                self._frames = self.frame_cache.add_video(self.video_id, self.path, fps=self.fps, size=self.size)
            elif self._frames is None:
                self._frames = load_video(self.path, fps=self.fps, size=self.size)
            return self._frames

    def jpegs(self, timestamps: list[float]) -> list[bytes]:
        missing = [t for t in timestamps if t not in self._jpegs]
        if missing:
            frames, times = self.frames()
            for t in missing:
                self._jpegs[t] = jpeg_bytes(frames[nearest_frame(times, t)], self.jpeg_quality)
        return [self._jpegs[t] for t in timestamps]

    def release(self) -> None:
        with self._lock:
            self._frames = None
