"""Pure request builders: which API calls a video needs, given its local record and earlier answers.

Dense captioning (paper section 3): one caption per segment from its frames, then the timestamped segment captions
in order -> one video-level dense caption; videos under 60 s get one caption from their frames in a single pass.
QA strategies: ``short_global`` (short videos: all four task types from the description), and for long videos
``global`` (summarization, general QA, creative writing from the dense caption), ``multi_segment`` (temporal QA over
up to ``max_segments`` consecutive segment captions) and ``single_segment`` (local-detail general QA from one random
segment with the dense caption as context). Random choices are seeded by the video id, so a re-run builds the same
requests (and hits the cache).

Example (frames are encoded only when a request misses the cache, through the ``jpegs(times)`` callable)::

    >>> from dataset_builder.plan import PlanSettings, segment_caption_requests
    >>> from dataset_builder.records import LocalRecord
    >>> from dataset_builder.segmentation import fixed_segments
    >>> times = [float(t) for t in range(70)]
    >>> local = LocalRecord("k", "PMV/a", "f00d", 70.0, 30.0, 640, 360, (288, 512), tuple(times), "fixed",
    ...                     tuple(fixed_segments(times, 70.0, seconds=35.0)), {})
    >>> requests, sent = segment_caption_requests(local, jpegs=lambda times: [], settings=PlanSettings())
    >>> len(requests), len(sent), requests[1].image_ids[0]  # every 1-fps frame of the two 35 s segments
    (2, 70, 'f00d@35.000@288x512')
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .api import ChatRequest, ResponseSpec
from .limits import MAX_FRAMES_PER_REQUEST
from .prompts import load_prompt
from .records import LocalRecord
from .schemas import STRATEGY_TASK_TYPES
from .segmentation import Segment

Jpegs = Callable[[list[float]], list[bytes]]


@dataclass(frozen=True)
class PlanSettings:
    """The most frames a caption request sends (its 1-fps frames, evenly thinned beyond that), how wide the
    multi-segment window is, questions per task type."""

    frames_per_segment: int = MAX_FRAMES_PER_REQUEST
    frames_short_video: int = MAX_FRAMES_PER_REQUEST
    max_segments: int = 6
    questions_per_type: int = 1


def pick_times(timestamps: Sequence[float], first: int, last: int, count: int) -> list[float]:
    """Up to ``count`` sampled times spread uniformly over frames ``first..last`` (inclusive)."""
    span = last - first + 1
    indices = np.unique(np.linspace(first, last, num=min(count, span)).round().astype(int))
    return [timestamps[i] for i in indices]


def _image_request(
    stage: str, prompt_name: str, local: LocalRecord, times: list[float], jpegs: Jpegs, text_fields: dict
) -> ChatRequest:
    prompt = load_prompt(prompt_name)
    height, width = local.decode_size
    return ChatRequest(
        stage=stage,
        video_id=local.video_id,
        prompt=prompt,
        text=prompt.render(num_frames=len(times), **text_fields),
        spec=ResponseSpec("text"),
        image_ids=tuple(f"{local.fingerprint}@{t:.3f}@{height}x{width}" for t in times),
        images=lambda: jpegs(times),
        image_size=(width, height),
    )


def short_caption_request(local: LocalRecord, jpegs: Jpegs, settings: PlanSettings) -> tuple[ChatRequest, list[float]]:
    """The single-pass caption of a video under 60 s, and the frame times it sends."""
    times = pick_times(local.timestamps, 0, len(local.timestamps) - 1, settings.frames_short_video)
    return _image_request("short_caption", "short_caption", local, times, jpegs, {"duration": local.duration}), times


def segment_caption_requests(
    local: LocalRecord, jpegs: Jpegs, settings: PlanSettings
) -> tuple[list[ChatRequest], list[float]]:
    """One caption request per segment (its frames only), and all frame times they send."""
    requests, all_times = [], []
    for segment in local.segments:
        times = pick_times(local.timestamps, segment.first_frame, segment.last_frame, settings.frames_per_segment)
        fields = {"start": segment.start, "end": segment.end}
        requests.append(_image_request("segment_caption", "segment_caption", local, times, jpegs, fields))
        all_times.extend(times)
    return requests, all_times


def format_segments(segments: Sequence[Segment], captions: Sequence[str]) -> str:
    """``[start s - end s] caption`` per segment, blank-line separated: the timestamped input of later prompts."""
    return "\n\n".join(f"[{s.start:.0f}s - {s.end:.0f}s] {c}" for s, c in zip(segments, captions))


def _text_request(stage: str, prompt_name: str, local: LocalRecord, spec: ResponseSpec, **fields) -> ChatRequest:
    prompt = load_prompt(prompt_name)
    text = prompt.render(duration=local.duration, **fields)
    return ChatRequest(stage=stage, video_id=local.video_id, prompt=prompt, text=text, spec=spec)


def video_caption_request(local: LocalRecord, segment_captions: list[str]) -> ChatRequest:
    """Merge the timestamped segment captions into one dense video caption."""
    text = format_segments(local.segments, segment_captions)
    return _text_request("video_caption", "video_caption", local, ResponseSpec("text"), segment_captions=text)


def qa_requests(
    local: LocalRecord, video_caption: str, segment_captions: list[str], settings: PlanSettings
) -> list[tuple[str, int | None, ChatRequest]]:
    """``(strategy, segment index or None, request)`` for every QA strategy that applies to the video."""
    n = settings.questions_per_type

    def spec(strategy: str) -> ResponseSpec:
        return ResponseSpec("qa", STRATEGY_TASK_TYPES[strategy])

    if local.segmentation == "none":
        types = ", ".join(STRATEGY_TASK_TYPES["short_global"])
        fields = {"video_caption": video_caption, "task_types": types, "questions_per_type": n}
        return [("short_global", None, _text_request("qa", "qa_global", local, spec("short_global"), **fields))]
    types = ", ".join(STRATEGY_TASK_TYPES["global"])
    fields = {"video_caption": video_caption, "task_types": types, "questions_per_type": n}
    plans = [("global", None, _text_request("qa", "qa_global", local, spec("global"), **fields))]
    rng = random.Random(int(hashlib.sha256(local.video_id.encode()).hexdigest(), 16))
    segments = local.segments
    if len(segments) >= 2:
        width = min(settings.max_segments, len(segments))
        first = rng.randrange(len(segments) - width + 1)
        window = slice(first, first + width)
        text = format_segments(segments[window], segment_captions[window])
        request = _text_request(
            "qa", "qa_multi_segment", local, spec("multi_segment"), segment_captions=text, questions_per_type=n
        )
        plans.append(("multi_segment", first, request))
    index = rng.randrange(len(segments))
    fields = {
        "video_caption": video_caption,
        "segment_caption": segment_captions[index],
        "start": segments[index].start,
        "end": segments[index].end,
        "questions_per_type": n,
    }
    plans.append(
        ("single_segment", index, _text_request("qa", "qa_single_segment", local, spec("single_segment"), **fields))
    )
    return plans
