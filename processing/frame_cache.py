"""Decode once, train many: a sharded, checksummed cache of each video's 1 fps frames.

The annotator decodes every video at 1 fps anyway; it hands those frames (resized for the model and encoded as
JPEG/WebP) to a :class:`FrameCacheWriter`. Training and inference then read the frames they need from the cache in
milliseconds instead of decoding the original file again.

Layout (scales to 300K videos: a few hundred files, not one file per frame)::

    CACHE_DIR/
        shard-<writer>-00000.bin     # appended records, one per video: header (frame sizes, timestamps, source
                                     # positions) + its encoded frames back to back
        index-<writer>.jsonl         # one short JSON line per video: shard, offset, length, sha256, source info

Every writer (one per annotation process / `--shard I/N` run) owns its files, so concurrent writers never touch the
same file. A record is fsynced before its index line is appended; a crash leaves at most an orphan record (ignored)
or a torn last index line (skipped). Reads verify the record's sha256: a truncated or corrupt shard makes that video
fall back to decoding the original file, with a warning naming it.

Example:

```python
>>> from processing.frame_cache import FrameCache, load_frames
>>> cache = FrameCache("work/frame_cache")  # doctest: +SKIP
>>> frames, timestamps = load_frames("videos/a.mp4", video_id="a", num_frames=32, cache=cache)  # doctest: +SKIP
```
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from .frame_sampling import sample_frame_indices
from .video_reader import load_video, probe_video

logger = logging.getLogger(__name__)

IMAGE_FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
RESIZE_MODES = ("square", "short_side")


def decode_images(blobs: list[bytes], image_format: str) -> np.ndarray:
    """Encoded frames -> uint8 `(T, H, W, 3)`; JPEG in one batched libjpeg-turbo call (about 2x PIL's speed)."""
    if image_format == "jpeg":
        tensors = [torch.frombuffer(bytearray(blob), dtype=torch.uint8) for blob in blobs]
        return torch.stack(decode_jpeg(tensors, mode=ImageReadMode.RGB)).permute(0, 2, 3, 1).numpy()
    return np.stack([np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")) for blob in blobs])


class FrameCacheError(ValueError):
    """A cache entry is missing, truncated or fails its checksum (callers fall back to decoding)."""


@dataclass(frozen=True)
class CacheEntry:
    """One video's index line (a few hundred bytes, so 300K videos index in tens of MB): where its record lives."""

    video_id: str
    shard: str
    offset: int
    length: int
    num_frames: int
    source_num_frames: int
    source_fps: float
    sha256: str
    image_format: str


def pack_record(header: dict, frames: list[bytes]) -> bytes:
    """`[8-byte little-endian header length][header JSON][frame 0][frame 1]...`."""
    encoded_header = json.dumps(header).encode()
    return len(encoded_header).to_bytes(8, "little") + encoded_header + b"".join(frames)


def unpack_record(record: bytes) -> tuple[dict, list[bytes]]:
    """Inverse of `pack_record`: the header and the encoded frames."""
    header_length = int.from_bytes(record[:8], "little")
    header = json.loads(record[8 : 8 + header_length])
    starts = np.concatenate(([8 + header_length], 8 + header_length + np.cumsum(header["frame_bytes"])))
    return header, [record[starts[i] : starts[i + 1]] for i in range(len(header["frame_bytes"]))]


class FrameCacheWriter:
    """Append videos' frames to this writer's own shard files.

    Args:
        cache_dir: the cache directory (shared by all writers).
        writer_id: unique per concurrent writer; default: a random id.
        image_format: `"jpeg"` or `"webp"`.
        quality: encoder quality (1-100).
        size: frames are resized to this before encoding (384 = SigLIP's input); `None` keeps them as given.
        resize_mode: `"square"` (`size x size`, what the video processor feeds the model) or `"short_side"`
            (aspect kept, short side = `size`).
        shard_bytes: start a new shard file past this size.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        writer_id: str | None = None,
        image_format: str = "jpeg",
        quality: int = 80,
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

    def encode(self, frame: np.ndarray) -> bytes:
        image = Image.fromarray(frame)
        if self.size is not None:
            if self.resize_mode == "square":
                target = (self.size, self.size)
            else:
                scale = self.size / min(image.size)
                target = (round(image.width * scale), round(image.height * scale))
            if target != image.size:
                image = image.resize(target, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format=IMAGE_FORMATS[self.image_format], quality=self.quality)
        return buffer.getvalue()

    def add(
        self,
        video_id: str,
        frames: np.ndarray,
        timestamps: np.ndarray,
        positions: np.ndarray,
        source_num_frames: int,
        source_fps: float,
    ) -> CacheEntry:
        """Store `frames (T, H, W, 3) uint8` with their `timestamps` (s) and frame `positions` in the source."""
        if not (len(frames) == len(timestamps) == len(positions)) or len(frames) == 0:
            raise ValueError(f"{video_id}: frames, timestamps and positions must be non-empty and of equal length")
        encoded = [self.encode(frame) for frame in frames]
        header = {
            "frame_bytes": [len(item) for item in encoded],
            "timestamps": [float(t) for t in timestamps],
            "positions": [int(p) for p in positions],
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

    def add_sampled(
        self, video_id: str, path: str | os.PathLike, frames: np.ndarray, timestamps: np.ndarray, fps: float = 1.0
    ) -> CacheEntry:
        """Store what `load_video(path, fps=fps)` returned, recovering the frames' positions in the source."""
        info = probe_video(path)
        positions = sample_frame_indices(info.num_frames, info.fps, fps=fps)
        if len(positions) != len(frames):
            raise ValueError(
                f"{video_id}: {len(frames)} frames given but fps={fps} sampling of {path} yields {len(positions)}; "
                "pass exactly the frames of load_video(path, fps=fps)"
            )
        return self.add(video_id, frames, timestamps, positions, info.num_frames, info.fps)


class FrameCache:
    """Read side of the cache: merges every writer's index; the newest entry of a video wins."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
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
        self, video_id: str, num_frames: int | None = None, fps: float | None = None, max_frames: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames chosen as `load_video` chooses them over the whole source video, served from the cache.

        The source frame positions are computed with the same rules (`sample_frame_indices` over the source's frame
        count and rate); each is served by the cached frame nearest to it. Requests on the cached grid (1 fps, or
        1/k fps) are exact; others (e.g. uniform `num_frames`) are at most half a cache step away (under one step
        past the last cached frame), and the returned timestamps are those of the frames actually returned.
        """
        entry, header, frames = self._record(video_id)
        wanted = sample_frame_indices(
            entry.source_num_frames, entry.source_fps, num_frames=num_frames, fps=fps, max_frames=max_frames
        )
        cached = np.asarray(header["positions"])
        nearest = np.abs(cached[None, :] - wanted[:, None]).argmin(axis=1)
        unique, inverse = np.unique(nearest, return_inverse=True)
        decoded = decode_images([frames[i] for i in unique], entry.image_format)
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
    """Frames of `video` from `cache` when it holds `video_id`, else (or when the entry is damaged) decoded.

    Returns `(frames (T, H, W, 3) uint8, timestamps (T,) float64 seconds)` like `load_video`. Cached frames have
    the size they were cached at; `size` applies to decoding only.
    """
    video_id = video_id if video_id is not None else Path(video).stem
    if cache is not None and video_id in cache:
        try:
            return cache.sample(video_id, num_frames=num_frames, fps=fps, max_frames=max_frames)
        except FrameCacheError as error:
            logger.warning("%s; decoding %s instead", error, video)
    return load_video(video, num_frames=num_frames, fps=fps, max_frames=max_frames, size=size)


__all__ = ["CacheEntry", "FrameCache", "FrameCacheError", "FrameCacheWriter", "load_frames"]
