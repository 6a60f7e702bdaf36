"""Decode once, train many: a sharded, checksummed cache of the frames training samples from each video.

The annotator decodes every video anyway; :meth:`FrameCacheWriter.add_video` decodes it once for both: it returns
the 1-fps frames the annotator needs and caches, resized for the model exactly as training resizes them (PIL bicubic
from the native frame, :mod:`processing.pixels`) and encoded as JPEG, WebP or PNG:

* the frames the video's training stage samples: ``np.linspace(0, total - 1, N, dtype=int)`` over its native frames
  with ``N`` from its duration band (:func:`stage_num_frames`: < 2 min -> 32, 2-5 min -> 128, 5-20 min -> 192), so a
  cached training sample holds the same frames at the same timestamps as a decoded one;
* the 1-fps frames (any ``fps`` whose step is a multiple of the cached one is served exactly too).

Training and inference read the frames they need in milliseconds; a request the cache cannot serve exactly is decoded
instead, unless the caller accepts the nearest cached frame within a stated ``max_offset`` (seconds).

Layout (scales to 300K videos: a few hundred files, not one file per frame; record format: `frame_records`)::

    CACHE_DIR/
        shard-<writer>-00000.bin     # appended records, one per video: header (encoded sizes, timestamps, source
                                     # positions, frame counts sampled) + its encoded frames back to back
        index-<writer>.jsonl         # one short JSON line per video: shard, offset, length, sha256, source info

Every writer (one per annotation process / `--shard I/N` run) owns its files. A record is fsynced before its index
line is appended; a crash leaves at most an orphan record (ignored) or a torn last index line (skipped). Reads verify the record's sha256: a truncated or corrupt shard makes that video
fall back to decoding the original file, with a warning naming it.

Example:

```python
>>> from processing.frame_cache import FrameCache, FrameCacheWriter, load_frames
>>> writer = FrameCacheWriter("work/frame_cache", writer_id="shard-0")  # doctest: +SKIP
>>> frames_1fps, timestamps_1fps = writer.add_video("a", "videos/a.mp4", fps=1.0, size=(288, 512))  # doctest: +SKIP
>>> cache = FrameCache("work/frame_cache")  # doctest: +SKIP
>>> frames, timestamps = load_frames("videos/a.mp4", video_id="a", num_frames=32, cache=cache, size=384)  # doctest: +SKIP
```
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from .frame_index import build_frame_index
from .frame_records import (
    DEFAULT_QUALITY,
    IMAGE_FORMATS,
    RESIZE_MODES,
    CacheEntry,
    PixelError,
    decode_images,
    pack_record,
    pixel_error,
    unpack_record,
)
from .frame_sampling import sample_frame_indices, stage_num_frames
from .pixels import FrameArray, resize_image
from .video_reader import decode_frames, load_video, sample_positions

logger = logging.getLogger(__name__)


class FrameCacheError(ValueError):
    """A cache entry is missing, truncated or fails its checksum (callers fall back to decoding)."""


class FrameCacheMiss(FrameCacheError):
    """The cache holds the video but not the frames asked for (callers decode them instead)."""


class FrameCacheWriter:
    """Append videos' frames to this writer's own shard files.

    Args:
        cache_dir: the cache directory (shared by all writers).
        writer_id: unique per concurrent writer; default: a random id.
        image_format: `"jpeg"` (4:4:4 chroma), `"webp"` or `"png"` (lossless).
        quality: JPEG/WebP quality (1-100); see `DEFAULT_QUALITY` for the measured error.
        size: frames are resized to this with PIL bicubic before encoding (384 = SigLIP's input, what training
            feeds the model); `None` keeps them as given.
        resize_mode: `"square"` (`size x size`, what the video processor feeds the model, so training reads cached
            frames as they are) or `"short_side"` (aspect kept, short side = `size`; training then decodes instead).
        shard_bytes: start a new shard file past this size.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        writer_id: str | None = None,
        image_format: str = "jpeg",
        quality: int = DEFAULT_QUALITY,
        size: int | None = 384,
        resize_mode: str = "square",
        shard_bytes: int = 1 << 30,
    ):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format={image_format!r} is not supported: use one of {tuple(IMAGE_FORMATS)}")
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must lie in [1, 100], got {quality}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode={resize_mode!r} is not supported: use one of {RESIZE_MODES}")
        self.size, self.resize_mode = size, resize_mode
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.image_format, self.quality, self.shard_bytes = image_format, quality, shard_bytes
        existing = sorted(self.cache_dir.glob(f"shard-{self.writer_id}-*.bin"))
        self._shard_number = int(existing[-1].stem.rsplit("-", 1)[1]) if existing else 0

    def _shard_path(self) -> Path:
        path = self.cache_dir / f"shard-{self.writer_id}-{self._shard_number:05d}.bin"
        if path.exists() and path.stat().st_size >= self.shard_bytes:
            self._shard_number += 1
            return self._shard_path()
        return path

    def cached_size(self, height: int, width: int) -> tuple[int, int] | None:
        """``(height, width)`` a ``height x width`` frame is cached at (``None``: as given)."""
        if self.size is None:
            return None
        if self.resize_mode == "square":
            return self.size, self.size
        scale = self.size / min(height, width)
        return round(height * scale), round(width * scale)

    def encode_image(self, image: Image.Image) -> bytes:
        """Resize (PIL bicubic, see `size`) and encode one frame."""
        image = resize_image(image, self.cached_size(image.height, image.width))
        buffer = io.BytesIO()
        if self.image_format == "jpeg":
            image.save(buffer, format="JPEG", quality=self.quality, subsampling=0)
        elif self.image_format == "webp":
            image.save(buffer, format="WEBP", quality=self.quality)
        else:
            image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def encode(self, frame: np.ndarray) -> bytes:
        """`encode_image` of a uint8 `(H, W, 3)` frame."""
        return self.encode_image(Image.fromarray(frame))

    def add(
        self,
        video_id: str,
        frames: np.ndarray,
        timestamps: np.ndarray,
        positions: np.ndarray,
        source_num_frames: int,
        source_fps: float,
    ) -> CacheEntry:
        """Store `frames (T, H, W, 3) uint8` with their `timestamps` (s) and frame `positions` in the source.

        The frames are resized here (PIL bicubic): pass them at their native size, as `load_video(path)` returns them,
        for the cache to hold training's pixels. `add_video` decodes and stores a video's training frames itself.
        """
        if not (len(frames) == len(timestamps) == len(positions)) or len(frames) == 0:
            raise ValueError(f"{video_id}: frames, timestamps and positions must be non-empty and of equal length")
        encoded = [self.encode(frame) for frame in frames]
        return self._write(video_id, encoded, timestamps, positions, source_num_frames, source_fps, [], None)

    def add_video(
        self,
        video_id: str,
        path: str | os.PathLike,
        fps: float = 1.0,
        size: int | tuple[int, int] | None = None,
        num_frames: list[int] | None = None,
        backend: str = "auto",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode ``path`` once: cache the frames training samples, and return its ``fps`` frames for annotation.

        Cached under ``video_id`` (resized to the cache size with PIL bicubic from the native frames): the
        ``np.linspace(0, total - 1, N, dtype=int)`` sample of every ``N`` in ``num_frames`` (default: the video's
        training stage, :func:`stage_num_frames` of its duration) and the ``fps`` frames. A failure to write the
        cache is logged and does not fail the video.

        Returns:
            ``(frames (T, H, W, 3) uint8, timestamps (T,) float64)``, the ``fps`` frames resized to ``size``, exactly
            what ``load_video(path, fps=fps, size=size)`` returns.

        Raises:
            VideoReadError: the file cannot be read (as `load_video` would).
        """
        index = build_frame_index(path)
        counts = num_frames if num_frames is not None else [stage_num_frames(index.duration)]
        counts = sorted({count for count in counts if count is not None})
        fps_positions = sample_positions(index, fps=fps)
        positions = np.unique(
            np.concatenate([fps_positions, *(sample_positions(index, num_frames=n) for n in counts)])
        )
        annotation = np.searchsorted(positions, fps_positions)
        height, width = (size, size) if isinstance(size, int) else (size or (index.height, index.width))
        sink = _CacheSink(self, len(positions), annotation, (height, width))
        decode_frames(index, positions, sink, backend)
        frames, timestamps = sink.annotation.frames, index.timestamps[fps_positions].copy()
        try:
            timestamps_cached = index.timestamps[positions]
            self._write(
                video_id, sink.encoded, timestamps_cached, positions, index.num_frames, index.avg_fps, counts, fps
            )
        except OSError as error:  # the cache only saves time: never fail a video on it
            logger.warning("%s: not added to the frame cache %s: %s", video_id, self.cache_dir, error)
        return frames, timestamps

    def _write(
        self,
        video_id: str,
        encoded: list[bytes],
        timestamps: np.ndarray,
        positions: np.ndarray,
        source_num_frames: int,
        source_fps: float,
        sampled_counts: list[int],
        sampled_fps: float | None,
    ) -> CacheEntry:
        """Append one record (header: encoded sizes, timestamps, source positions, and what was sampled: uniform
        frame counts and an fps) and its index line."""
        header = {
            "frame_bytes": [len(item) for item in encoded],
            "timestamps": [float(t) for t in timestamps],
            "positions": [int(p) for p in positions],
            "sampled_counts": [int(n) for n in sampled_counts],
            "sampled_fps": sampled_fps,
        }
        record = pack_record(header, encoded)
        shard = self._shard_path()
        with open(shard, "ab") as handle:
            offset = handle.tell()
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        entry = CacheEntry(
            video_id=video_id,
            shard=shard.name,
            offset=offset,
            length=len(record),
            num_frames=len(encoded),
            source_num_frames=int(source_num_frames),
            source_fps=float(source_fps),
            sha256=hashlib.sha256(record).hexdigest(),
            image_format=self.image_format,
        )
        with open(self.cache_dir / f"index-{self.writer_id}.jsonl", "a") as handle:
            handle.write(json.dumps(entry.__dict__) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry


class _CacheSink:
    """Receives each decoded frame once: encodes it for the cache, and keeps the annotator's frames at their size."""

    def __init__(self, writer: FrameCacheWriter, count: int, annotation_slots: np.ndarray, size: tuple[int, int]):
        self.writer = writer
        self.encoded: list[bytes] = [b""] * count
        self.annotation = FrameArray(len(annotation_slots), size)
        self.annotation_slot = {int(slot): rank for rank, slot in enumerate(annotation_slots)}

    def __call__(self, slot: int, image: Image.Image) -> None:
        self.encoded[slot] = self.writer.encode_image(image)
        if slot in self.annotation_slot:
            self.annotation(self.annotation_slot[slot], image)


class FrameCache:
    """Read side of the cache: merges every writer's index; the newest entry of a video wins.

    Args:
        cache_dir: the cache directory.
        max_offset: seconds a cached frame may lie from the frame asked for and still serve it; the default 0 serves
            only the exact frames (the stage samples, the 1-fps grid) and leaves every other request to decoding.
    """

    def __init__(self, cache_dir: str | os.PathLike, max_offset: float = 0.0):
        if max_offset < 0:
            raise ValueError(f"max_offset must be >= 0 seconds, got {max_offset}")
        self.cache_dir = Path(cache_dir)
        self.max_offset = max_offset
        self.entries: dict[str, CacheEntry] = {}
        for index_file in sorted(self.cache_dir.glob("index-*.jsonl")):
            for number, line in enumerate(index_file.read_text().splitlines(), start=1):
                try:
                    entry = CacheEntry(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    logger.warning("%s:%d: unreadable index line skipped (torn write?)", index_file, number)
                    continue
                self.entries[entry.video_id] = entry

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def _record(self, video_id: str) -> tuple[CacheEntry, dict, list[bytes]]:
        """The verified record of a video: its index entry, header and encoded frames."""
        entry = self.entries.get(video_id)
        if entry is None:
            raise FrameCacheError(f"{video_id}: not in the frame cache {self.cache_dir}")
        shard = self.cache_dir / entry.shard
        try:
            with open(shard, "rb") as handle:
                handle.seek(entry.offset)
                record = handle.read(entry.length)
        except OSError as error:
            raise FrameCacheError(f"{video_id}: cannot read shard {shard}: {error}") from error
        if len(record) != entry.length or hashlib.sha256(record).hexdigest() != entry.sha256:
            raise FrameCacheError(f"{video_id}: shard {shard} is truncated or corrupt (checksum mismatch)")
        header, frames = unpack_record(record)
        return entry, header, frames

    def read(self, video_id: str, positions: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All cached frames of a video (or those at `positions` in the cache) and their timestamps."""
        entry, header, frames = self._record(video_id)
        wanted = list(range(entry.num_frames) if positions is None else positions)
        timestamps = np.asarray(header["timestamps"], dtype=np.float64)[wanted]
        return decode_images([frames[i] for i in wanted], entry.image_format), timestamps

    def sample(
        self,
        video_id: str,
        num_frames: int | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        size: int | tuple[int, int] | None = None,
        max_offset: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames chosen as `load_video` chooses them over the whole source video, served from the cache.

        The source frame positions are computed with the same rules (`sample_frame_indices` over the source's frame
        count and rate). Each is served by the cached frame at that position; a frame farther than `max_offset`
        seconds (default: the cache's) from every cached frame, or cached frames of another size than `size`, raise
        `FrameCacheMiss`. Timestamps are those of the frames returned.
        """
        entry, header, frames = self._record(video_id)
        max_offset = self.max_offset if max_offset is None else max_offset
        wanted = sample_frame_indices(
            entry.source_num_frames, entry.source_fps, num_frames=num_frames, fps=fps, max_frames=max_frames
        )
        cached = np.asarray(header["positions"])
        nearest = np.abs(cached[None, :] - wanted[:, None]).argmin(axis=1)
        offset = np.abs(cached[nearest] - wanted).max() / entry.source_fps
        if offset > max_offset:
            held = f"uniform samples of {header.get('sampled_counts', [])} frames, fps={header.get('sampled_fps')}"
            raise FrameCacheMiss(
                f"{video_id}: the cache holds {len(cached)} frames ({held}); the frames asked for lie up to "
                f"{offset:.3f}s from them, more than max_offset={max_offset}s"
            )
        unique, inverse = np.unique(nearest, return_inverse=True)
        decoded = decode_images([frames[i] for i in unique], entry.image_format)
        if size is not None:
            height, width = (size, size) if isinstance(size, int) else size
            if decoded.shape[1:3] != (height, width):
                raise FrameCacheMiss(f"{video_id}: cached at {decoded.shape[1:3]}, asked for {(height, width)}")
        return decoded[inverse], np.asarray(header["timestamps"], dtype=np.float64)[unique][inverse]


def load_frames(
    video: str | os.PathLike,
    video_id: str | None = None,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    cache: FrameCache | None = None,
    size: int | tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of `video` from `cache` when it holds them, else decoded (as `load_video`, PIL-resized to `size`).

    The cache serves a request when it holds `video_id` with those frames (the stage samples and the 1-fps grid, or
    within the cache's `max_offset`) at that `size`; a damaged entry is reported and decoded. Returns
    `(frames (T, H, W, 3) uint8, timestamps (T,) float64 seconds)` like `load_video`.
    """
    video_id = video_id if video_id is not None else Path(video).stem
    if cache is not None and video_id in cache:
        try:
            return cache.sample(video_id, num_frames=num_frames, fps=fps, max_frames=max_frames, size=size)
        except FrameCacheMiss as miss:
            logger.debug("%s; decoding %s", miss, video)
        except FrameCacheError as error:
            logger.warning("%s; decoding %s instead", error, video)
    return load_video(video, num_frames=num_frames, fps=fps, max_frames=max_frames, size=size)


__all__ = [
    "CacheEntry",
    "FrameCache",
    "FrameCacheError",
    "FrameCacheMiss",
    "FrameCacheWriter",
    "PixelError",
    "load_frames",
    "pixel_error",
    "stage_num_frames",
]
