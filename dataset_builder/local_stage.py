"""The local (free) stage of one video: probe, 1-fps frames, frame captions + features, segmentation.

Its output is a :class:`~dataset_builder.records.LocalRecord`, cached in ``work/local`` by
``sha256(fingerprint, segmentation settings, model names)`` so re-runs never decode or run the models again.

Example (a 65 s video in fixed 10 s segments; semantic segmentation would also take a captioner and an embedder)::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from dataset_builder.local_stage import LocalSettings, run_local_stage
    >>> from dataset_builder.videos import FrameProvider, VideoItem, fingerprint
    >>> from processing.synthetic import write_scene_video
    >>> path = Path(tempfile.mkdtemp()) / "clip.mp4"
    >>> cuts = write_scene_video(path, [30, 35])
    >>> item = VideoItem("clip", str(path), "demo")
    >>> record, provider = run_local_stage(item, LocalSettings(segmentation="fixed"), fingerprint(path), FrameProvider,
    ...                                    None, None)
    >>> record.segmentation, len(record.timestamps), [(s.start, s.end) for s in record.segments[-2:]]
    ('fixed', 65, [(50.0, 60.0), (60.0, 65.0)])
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from .frame_models import FrameCaptioner, FrameEmbedder
from .records import LocalRecord
from .segmentation import (
    DEFAULT_MIN_SEGMENT_SECONDS,
    DEFAULT_THRESHOLD,
    FIXED_SEGMENT_SECONDS,
    MIN_SEGMENTATION_SECONDS,
    fixed_segments,
    segment_frames,
    whole_video,
)
from .videos import FrameProvider, VideoItem, decode_size


@dataclass(frozen=True)
class LocalSettings:
    """Settings of the local stage; all of them enter the cache key."""

    segmentation: str = "semantic"
    threshold: float = DEFAULT_THRESHOLD
    min_segment_seconds: float = DEFAULT_MIN_SEGMENT_SECONDS
    fixed_seconds: float = FIXED_SEGMENT_SECONDS
    frame_size: int = 512
    fps: float = 1.0
    captioner: str = ""
    embedder: str = ""

    def __post_init__(self) -> None:
        if self.segmentation not in ("semantic", "fixed"):
            raise ValueError(f"--segmentation must be 'semantic' or 'fixed', got {self.segmentation!r}.")

    def key(self, fingerprint: str) -> str:
        material = json.dumps({"fingerprint": fingerprint, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()


def nominal_timestamps(duration: float, fps: float) -> np.ndarray:
    """Sampling times ``0, 1/fps, ...`` below ``duration`` (at least one)."""
    return np.arange(max(1, int(np.ceil(duration * fps - 1e-9)))) / fps


def local_plan(item: VideoItem, settings: LocalSettings, fingerprint: str) -> LocalRecord:
    """The local record known before any frame model: probe, decode size, sampling times, and the segments of a fixed
    or unsegmented (``"none"``, under ``MIN_SEGMENTATION_SECONDS``) video. A video for semantic segmentation comes
    back with ``segmentation="semantic"`` and no segments yet (:func:`with_semantic_segments` adds them).

    Raises ``VideoReadError`` / ``ValueError`` for unusable videos.
    """
    from processing import probe_video

    info = probe_video(item.path)
    if not info.duration or info.duration <= 0 or info.num_frames <= 0:
        raise ValueError(f"{item.path} has no frames (duration {info.duration}, {info.num_frames} frames).")
    timestamps = nominal_timestamps(info.duration, settings.fps)
    if info.duration < MIN_SEGMENTATION_SECONDS:
        mode, segments = "none", whole_video(timestamps, info.duration)
    elif settings.segmentation == "fixed":
        mode, segments = "fixed", fixed_segments(timestamps, info.duration, settings.fixed_seconds)
    else:
        mode, segments = "semantic", []
    return LocalRecord(
        key=settings.key(fingerprint),
        video_id=item.video_id,
        fingerprint=fingerprint,
        duration=float(info.duration),
        fps=float(info.fps),
        width=int(info.width),
        height=int(info.height),
        decode_size=decode_size(info.width, info.height, settings.frame_size),
        timestamps=tuple(round(float(t), 4) for t in timestamps),
        segmentation=mode,
        segments=tuple(segments),
        frame_models={},
    )


def frame_features(
    frames: np.ndarray, captioner: FrameCaptioner, embedder: FrameEmbedder
) -> tuple[np.ndarray, np.ndarray]:
    """``frames (T, H, W, 3) uint8`` -> ``(image features (T, D), caption features (T, D))``: each frame's caption
    embedded in the image feature space."""
    captions = captioner.caption(frames)
    return embedder.embed_images(frames), embedder.embed_texts(captions)


def with_semantic_segments(
    record: LocalRecord,
    settings: LocalSettings,
    image_features: np.ndarray,
    caption_features: np.ndarray,
    timestamps: np.ndarray,
    frame_models: dict[str, str],
) -> LocalRecord:
    """``record`` (from :func:`local_plan`) segmented from its decoded frames' features at ``timestamps (T,)``."""
    segments = segment_frames(
        image_features,
        caption_features,
        timestamps,
        record.duration,
        threshold=settings.threshold,
        min_segment_seconds=settings.min_segment_seconds,
    )
    return replace(
        record,
        timestamps=tuple(round(float(t), 4) for t in timestamps),
        segments=tuple(segments),
        frame_models=dict(frame_models),
    )


def run_local_stage(
    item: VideoItem,
    settings: LocalSettings,
    fingerprint: str,
    provider_factory,
    captioner: FrameCaptioner | None,
    embedder: FrameEmbedder | None,
) -> tuple[LocalRecord, FrameProvider]:
    """Probe and segment one video. Raises ``VideoReadError`` / ``ValueError`` for unusable videos.

    ``provider_factory(path, (h, w), fps)`` builds the frame provider; semantic segmentation decodes through it, so
    the caller can reuse the decoded frames for the API stage. ``captioner``/``embedder`` are only needed (and only
    called) for videos of at least ``MIN_SEGMENTATION_SECONDS`` under semantic segmentation.
    """
    record = local_plan(item, settings, fingerprint)
    provider = provider_factory(item.path, record.decode_size, settings.fps)
    if record.segmentation != "semantic":
        return record, provider
    if captioner is None or embedder is None:
        raise ValueError("Semantic segmentation needs a frame captioner and an embedder.")
    frames, timestamps = provider.frames()
    image_features, caption_features = frame_features(frames, captioner, embedder)
    names = {"captioner": captioner.name, "embedder": embedder.name}
    return with_semantic_segments(record, settings, image_features, caption_features, timestamps, names), provider
