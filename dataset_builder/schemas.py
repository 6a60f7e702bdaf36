"""Row schemas (``datasets.Features``) of every table the pipeline writes, and validation of JSON QA responses.

Tables:
    ``captions``  one row per video: segments with start/end/caption and the video-level dense caption.
    ``qa``        one row per question/answer pair, with its task type and generation strategy.
    ``stage1/2/3`` training rows in the team contract's chat format (videos < 2 min, 2-5 min, 5-20 min).
    ``import``    the same training rows plus ``num_frames``; image configs hold an ``image`` path instead.

Example:
    >>> from dataset_builder.schemas import validate_qa_response
    >>> validate_qa_response('{"qa": [{"task_type": "temporal", "question": "Q?", "answer": "A."}]}', ["temporal"])
    [{'task_type': 'temporal', 'question': 'Q?', 'answer': 'A.'}]
"""

from __future__ import annotations

import json

from datasets import Features, List, Value

TASK_TYPES = ("summarization", "general_qa", "creative_writing", "temporal")
# strategy -> task types it asks for (paper section 3): short videos ask all four from the global description.
STRATEGY_TASK_TYPES = {
    "short_global": TASK_TYPES,
    "global": ("summarization", "general_qa", "creative_writing"),
    "multi_segment": ("temporal",),
    "single_segment": ("general_qa",),
}
# Training stages by duration in seconds: [low, high).
STAGE_BOUNDS = {"stage1": (0.0, 120.0), "stage2": (120.0, 300.0), "stage3": (300.0, 1200.0 + 1e-6)}

SEGMENT_FEATURES = {"start": Value("float64"), "end": Value("float64"), "caption": Value("string")}

CAPTIONS_FEATURES = Features(
    {
        "video_id": Value("string"),
        "video": Value("string"),
        "source": Value("string"),
        "duration": Value("float64"),
        "fps": Value("float64"),
        "segmentation": Value("string"),
        "segments": List(SEGMENT_FEATURES),
        "video_caption": Value("string"),
        "prompt_versions": Value("string"),
        "models": Value("string"),
    }
)

QA_FEATURES = Features(
    {
        "video_id": Value("string"),
        "source": Value("string"),
        "duration": Value("float64"),
        "task_type": Value("string"),
        "strategy": Value("string"),
        "question": Value("string"),
        "answer": Value("string"),
        "prompt_version": Value("string"),
    }
)

TRAINING_FEATURES = Features(
    {
        "video_id": Value("string"),
        "video": Value("string"),
        "source": Value("string"),
        "duration": Value("float64"),
        "messages": List(
            {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        ),
    }
)


# `python -m dataset_builder import` rows: the training columns plus upstream's optional per-row frame count (null:
# the stage's `num_frames`), and the image stages' rows (an `image` path instead of a video, as the recipes read).
IMPORTED_VIDEO_FEATURES = Features({**TRAINING_FEATURES, "num_frames": Value("int32")})
IMAGE_TRAINING_FEATURES = Features(
    {
        "video_id": Value("string"),
        "image": Value("string"),
        "source": Value("string"),
        "messages": TRAINING_FEATURES["messages"],
    }
)
IMAGE_CONFIGS = ("image_alignment", "image_knowledge", "image_sft")


class ResponseValidationError(ValueError):
    """A model response that is not valid JSON or does not match the requested schema."""


def validate_qa_response(content: str, task_types: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
    """Parse ``{"qa": [{"task_type", "question", "answer"}, ...]}`` and check it.

    Every item needs non-empty ``question``/``answer`` strings and a ``task_type`` from ``task_types``; every
    requested task type must appear at least once. Returns the items (only the three keys).

    Raises:
        ResponseValidationError: naming what is wrong (not JSON, missing key, unknown or missing task type).
    """
    try:
        payload = json.loads(content)
    except (json.JSONDecodeError, TypeError) as error:
        raise ResponseValidationError(f"response is not valid JSON ({error})") from None
    items = payload.get("qa") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ResponseValidationError('response must be an object with a non-empty "qa" list')
    cleaned = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ResponseValidationError(f"qa[{index}] is not an object")
        for key in ("task_type", "question", "answer"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ResponseValidationError(f"qa[{index}].{key} must be a non-empty string")
        if item["task_type"] not in task_types:
            raise ResponseValidationError(f"qa[{index}].task_type {item['task_type']!r} not in {list(task_types)}")
        cleaned.append({key: item[key].strip() for key in ("task_type", "question", "answer")})
    missing = set(task_types) - {item["task_type"] for item in cleaned}
    if missing:
        raise ResponseValidationError(f"no questions of task type(s) {sorted(missing)}")
    return cleaned


def validate_text_response(content: str | None) -> str:
    """A caption response must be a non-empty string."""
    if not isinstance(content, str) or not content.strip():
        raise ResponseValidationError("empty caption")
    return content.strip()


def stage_of(duration: float) -> str | None:
    """The training stage of a video by duration, or ``None`` when it is longer than 20 minutes."""
    for stage, (low, high) in STAGE_BOUNDS.items():
        if low <= duration < high:
            return stage
    return None
