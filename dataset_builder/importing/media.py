"""Media of imported rows: paths under ``--media-root``, header probes (parallel, cached, resumable) and images that
arrive as bytes.

* :func:`resolve_media` -- an annotation's path, normalized, relative to the media root. Absolute paths and paths
  whose ``..`` leave the root are refused. The check is on the path as written (lexical), so symlinks placed inside
  the root are followed: a Hub snapshot is a tree of symlinks into a blob store outside it.
* :class:`MediaProber` -- duration (videos) or size (images) of many files at once, on a thread pool. ``header``
  probes read the container header only (``stream.duration``, else the container's; a header without a duration is
  demuxed); ``full`` probes demux every packet (``processing.probe_video``), which also catches truncated files.
  Every result is appended to a :class:`~dataset_builder.store.JsonlStore` keyed by path, size and mtime, so a
  resumed import never probes a file twice and a changed file is probed again. A missing file is never cached.
* :func:`store_image` -- embedded image bytes -> ``images/<hash[:2]>/<hash>.<ext>`` under the dataset folder
  (content-addressed: a repeated image is written once, a re-run rewrites nothing).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from processing.synthetic import write_video
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_video(root / "clip.mp4", num_frames=30, fps=10)
    >>> resolve_media("sub/../clip.mp4")
    'clip.mp4'
    >>> resolve_media("../outside.mp4")
    Traceback (most recent call last):
    ...
    dataset_builder.importing.media.MediaError: ../outside.mp4 leaves --media-root; media paths must stay inside it
    >>> prober = MediaProber(root / "probes", workers=2)
    >>> probes = prober.probe([root / "clip.mp4", root / "gone.mp4"], "video")
    >>> probes[str(root / "clip.mp4")].duration, probes[str(root / "gone.mp4")].kind
    (3.0, 'missing')
    >>> prober.close()
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..store import JsonlStore

PROBE_MODES = ("header", "full")


class MediaError(ValueError):
    """A media reference that cannot be used; ``kind`` names the problem (``unsafe_path``, ``missing``, ...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def resolve_media(relative: str) -> str:
    """``relative`` normalized (POSIX separators); raises :class:`MediaError` (``unsafe_path``) when it is absolute
    or would leave the directory it is relative to."""
    if not isinstance(relative, str) or not relative.strip():
        raise MediaError("no_media", f"media path must be a non-empty string, got {relative!r}")
    posix = relative.replace("\\", "/")
    if posixpath.isabs(posix) or os.path.isabs(relative) or ":" in posix.split("/", 1)[0]:
        raise MediaError("unsafe_path", f"{relative} is absolute; media paths must be relative to --media-root")
    normalized = posixpath.normpath(posix)
    if normalized == ".." or normalized.startswith("../"):
        raise MediaError("unsafe_path", f"{relative} leaves --media-root; media paths must stay inside it")
    return normalized


@dataclass(frozen=True)
class Probe:
    """What a probe found: ``duration`` (seconds, videos) or ``width``/``height`` (images); else ``kind`` and
    ``reason`` of the failure (``missing`` or ``unreadable``)."""

    duration: float | None = None
    width: int | None = None
    height: int | None = None
    kind: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


def header_duration(path: str | os.PathLike) -> float:
    """Seconds of the first video stream, from the container header (demuxes the file only when it has none).

    Raises :class:`~processing.VideoReadError` for a missing, empty, corrupt or non-video file.
    """
    import av

    from processing import probe_video
    from processing.frame_index import open_container

    with open_container(path) as container:
        stream = container.streams.video[0]
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration and container.duration > 0:
            return container.duration / av.time_base
    return probe_video(path).duration


def _probe_one(path: str, kind: str, mode: str) -> Probe:
    from PIL import Image, UnidentifiedImageError

    from processing import VideoReadError, probe_video

    try:
        if kind == "image":
            with Image.open(path) as image:
                return Probe(width=image.width, height=image.height)
        duration = header_duration(path) if mode == "header" else probe_video(path).duration
        return Probe(duration=duration)
    except (VideoReadError, UnidentifiedImageError, OSError) as error:
        return Probe(kind="unreadable", reason=str(error) or type(error).__name__)


class MediaProber:
    """Probe files on ``workers`` threads, remembering every result in ``cache_dir`` (see the module docstring)."""

    def __init__(self, cache_dir: str | Path, workers: int = 16, mode: str = "header") -> None:
        if mode not in PROBE_MODES:
            raise ValueError(f"probe mode {mode!r}; use one of {PROBE_MODES}.")
        self.mode = mode
        self.workers = workers
        self.store = JsonlStore(cache_dir, "probes")
        self.cache = {(r["path"], r["mode"]): r for r in self.store.records()}
        self.probed = 0  # files actually opened by this prober (cache misses)

    def _cached(self, path: str, signature: tuple[int, int], kind: str) -> Probe | None:
        record = self.cache.get((path, self.mode if kind == "video" else "image"))
        if record is None or (record["size"], record["mtime_ns"]) != signature:
            return None
        return Probe(**record["probe"])

    def _probe_and_store(self, path: str, signature: tuple[int, int], kind: str) -> Probe:
        probe = _probe_one(path, kind, self.mode)
        record = {"path": path, "mode": self.mode if kind == "video" else "image", "size": signature[0],
                  "mtime_ns": signature[1], "probe": probe.__dict__}  # fmt: skip
        self.store.append(record)
        self.cache[(path, record["mode"])] = record
        return probe

    def probe(self, paths: list[str | Path], kind: str) -> dict[str, Probe]:
        """``{str(path): Probe}`` for every distinct path; ``kind`` is ``"video"`` or ``"image"``."""
        results, todo = {}, []
        for path in dict.fromkeys(str(p) for p in paths):
            try:
                stat = os.stat(path)
            except OSError:
                results[path] = Probe(kind="missing", reason=f"{path}: file not found under --media-root")
                continue
            if not os.path.isfile(path):
                results[path] = Probe(kind="unreadable", reason=f"{path}: not a regular file")
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            cached = self._cached(path, signature, kind)
            if cached is None:
                todo.append((path, signature))
            else:
                results[path] = cached
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(todo))) as pool:
                probes = pool.map(lambda item: self._probe_and_store(item[0], item[1], kind), todo)
                results.update(zip((path for path, _ in todo), probes))
            self.probed += len(todo)
        return results

    def close(self) -> None:
        self.store.close()


def store_image(data: bytes, dataset_dir: str | Path) -> str:
    """Write image ``data`` under ``dataset_dir/images/`` (once per content); returns the path relative to
    ``dataset_dir``. Raises :class:`MediaError` (``unreadable``) when the bytes are not an image PIL can open."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            extension = {"JPEG": "jpg"}.get(image.format, (image.format or "img").lower())
    except (UnidentifiedImageError, OSError) as error:
        raise MediaError("unreadable", f"embedded image bytes are not a readable image ({error})") from None
    digest = hashlib.sha256(data).hexdigest()
    relative = f"images/{digest[:2]}/{digest}.{extension}"
    target = Path(dataset_dir) / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)
    return relative
