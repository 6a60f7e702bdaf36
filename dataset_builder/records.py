"""Typed records that cross module boundaries: a video's local-stage result and its finished annotation.

Code reads them by attribute. ``to_dict`` / ``from_dict`` convert at the I/O edge: the dict is the JSON line stored in
the work dir (``WORK_DIR/local``, ``WORK_DIR/annotations``), in the same format as before these types existed, so an
existing work dir resumes and builds.

Local record (``WORK_DIR/local``, written by :func:`dataset_builder.local_stage.run_local_stage`)::

    {"key", "video_id", "fingerprint", "duration", "fps", "width", "height", "decode_size": [h, w],
     "timestamps": [t0, ...], "segmentation": "semantic"|"fixed"|"none",
     "segments": [{"start", "end", "first_frame", "last_frame"}, ...], "frame_models": {"captioner", "embedder"}}

Annotation record (``WORK_DIR/annotations``, one per finished video, what ``build`` reads)::

    {"video_id", "video", "relative_video", "source", "fingerprint", "duration", "fps", "segmentation",
     "segments": [{"start", "end", "caption"}, ...], "video_caption",
     "qa": [{"task_type", "question", "answer", "strategy", "segment_index", "prompt_version"}, ...],
     "prompt_versions": {"captions": [...], "qa": [...]}, "models": {"api", ...}, "time"}

Example:
    >>> from dataset_builder.records import LocalRecord
    >>> line = {"key": "k", "video_id": "PMV/a", "fingerprint": "f", "duration": 70.0, "fps": 30.0, "width": 640,
    ...         "height": 360, "decode_size": [288, 512], "timestamps": [0.0, 1.0], "segmentation": "fixed",
    ...         "segments": [{"start": 0.0, "end": 70.0, "first_frame": 0, "last_frame": 1}], "frame_models": {}}
    >>> record = LocalRecord.from_dict(line)
    >>> record.decode_size, record.segments[0].end
    ((288, 512), 70.0)
    >>> record.to_dict() == line
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from .segmentation import Segment


@dataclass(frozen=True)
class LocalRecord:
    """Probe, sampling times and segments of one video; cached by ``key`` (fingerprint + local-stage settings).

    ``decode_size`` is ``(height, width)`` of the decoded frames; ``timestamps`` ``(T,)`` are the 1-fps sampling times
    in seconds; ``segmentation`` is ``"semantic"``, ``"fixed"`` or ``"none"`` (videos under a minute: one segment);
    ``frame_models`` names the captioner and embedder (semantic segmentation only, else empty).
    """

    key: str
    video_id: str
    fingerprint: str
    duration: float
    fps: float
    width: int
    height: int
    decode_size: tuple[int, int]
    timestamps: tuple[float, ...]
    segmentation: str
    segments: tuple[Segment, ...]
    frame_models: dict[str, str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalRecord:
        height, width = data["decode_size"]
        return cls(
            key=data["key"],
            video_id=data["video_id"],
            fingerprint=data["fingerprint"],
            duration=data["duration"],
            fps=data["fps"],
            width=data["width"],
            height=data["height"],
            decode_size=(height, width),
            timestamps=tuple(data["timestamps"]),
            segmentation=data["segmentation"],
            segments=tuple(Segment(**segment) for segment in data["segments"]),
            frame_models=dict(data["frame_models"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "video_id": self.video_id,
            "fingerprint": self.fingerprint,
            "duration": self.duration,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "decode_size": list(self.decode_size),
            "timestamps": list(self.timestamps),
            "segmentation": self.segmentation,
            "segments": [asdict(segment) for segment in self.segments],
            "frame_models": dict(self.frame_models),
        }


@dataclass(frozen=True)
class CaptionedSegment:
    """A segment's time span ``[start, end)`` in seconds and its dense caption."""

    start: float
    end: float
    caption: str


@dataclass(frozen=True)
class QAPair:
    """One generated question-answer pair; ``segment_index`` is the first segment it was asked about, or ``None``."""

    task_type: str
    question: str
    answer: str
    strategy: str
    segment_index: int | None
    prompt_version: str


@dataclass(frozen=True)
class AnnotationRecord:
    """Everything the API stages produced for one video; ``build`` turns these into the dataset's tables.

    ``video`` is the absolute local path (to read the file), ``relative_video`` the path relative to the videos root
    (what the published ``captions`` table stores; records written before it existed get the file name).
    """

    video_id: str
    video: str
    source: str
    fingerprint: str
    duration: float
    fps: float
    segmentation: str
    segments: tuple[CaptionedSegment, ...]
    video_caption: str
    qa: tuple[QAPair, ...]
    prompt_versions: dict[str, list[str]]
    models: dict[str, str]
    time: float
    relative_video: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnotationRecord:
        return cls(
            video_id=data["video_id"],
            video=data["video"],
            relative_video=data.get("relative_video") or PurePath(data["video"]).name,
            source=data["source"],
            fingerprint=data["fingerprint"],
            duration=data["duration"],
            fps=data["fps"],
            segmentation=data["segmentation"],
            segments=tuple(CaptionedSegment(**segment) for segment in data["segments"]),
            video_caption=data["video_caption"],
            qa=tuple(QAPair(**pair) for pair in data["qa"]),
            prompt_versions={name: list(tags) for name, tags in data["prompt_versions"].items()},
            models=dict(data["models"]),
            time=data["time"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "video": self.video,
            "relative_video": self.relative_video or PurePath(self.video).name,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "duration": self.duration,
            "fps": self.fps,
            "segmentation": self.segmentation,
            "segments": [asdict(segment) for segment in self.segments],
            "video_caption": self.video_caption,
            "qa": [asdict(pair) for pair in self.qa],
            "prompt_versions": {name: list(tags) for name, tags in self.prompt_versions.items()},
            "models": dict(self.models),
            "time": self.time,
        }
