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
    >>> from dataset_builder.schemas import parse_qa_response
    >>> fenced = '```json\\n{"qa": [{"task_type": "temporal", "question": "Q?", "answer": "A."}, {"task_type": "x"}]}\\n```'
    >>> parse_qa_response(fenced, ["temporal"])
    ([{'task_type': 'temporal', 'question': 'Q?', 'answer': 'A.'}], ['qa[1].question must be a non-empty string'])
"""

from __future__ import annotations

import json
import re

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


# A JSON answer wrapped in a Markdown code fence (```json ... ```), as chat models often write it.
CODE_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```\s*$", re.DOTALL)


def parse_qa_response(content: str, task_types: list[str] | tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    """Parse ``{"qa": [{"task_type", "question", "answer"}, ...]}`` (also inside a Markdown code fence).

    An item is valid when it is an object with non-empty ``question``/``answer`` strings and a ``task_type`` from
    ``task_types``. Invalid items are dropped, not fatal: a retry would pay for the whole answer again.

    Returns:
        ``(items, problems)``: the valid items (only the three keys, stripped) and one line per dropped item or
        requested task type without any item.

    Raises:
        ResponseValidationError: the answer is not JSON, has no ``"qa"`` list, or has no valid item at all.
    """
    fenced = CODE_FENCE.match(content or "")
    try:
        payload = json.loads(fenced.group(1) if fenced else content)
    except (json.JSONDecodeError, TypeError) as error:
        raise ResponseValidationError(f"response is not valid JSON ({error})") from None
    items = payload.get("qa") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        raise ResponseValidationError('response must be an object with a non-empty "qa" list')
    cleaned, problems = [], []
    for index, item in enumerate(items):
        problem = _qa_item_problem(index, item, task_types)
        if problem:
            problems.append(problem)
        else:
            cleaned.append({key: item[key].strip() for key in ("task_type", "question", "answer")})
    if not cleaned:
        raise ResponseValidationError(f"no valid item in the qa list: {'; '.join(problems)}")
    missing = [t for t in task_types if t not in {item["task_type"] for item in cleaned}]
    if missing:
        problems.append(f"no questions of task type(s) {missing}")
    return cleaned, problems


def _qa_item_problem(index: int, item: object, task_types: list[str] | tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return f"qa[{index}] is not an object"
    for key in ("task_type", "question", "answer"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            return f"qa[{index}].{key} must be a non-empty string"
    if item["task_type"] not in task_types:
        return f"qa[{index}].task_type {item['task_type']!r} not in {list(task_types)}"
    return None


def validate_qa_response(content: str, task_types: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
    """The valid items of a QA answer (see :func:`parse_qa_response`, which also lists the dropped ones)."""
    return parse_qa_response(content, task_types)[0]


def qa_json_schema(task_types: list[str] | tuple[str, ...]) -> dict:
    """The ``response_format`` of Structured Outputs for a QA answer: a strict schema of the requested task types."""
    item = {
        "type": "object",
        "properties": {
            "task_type": {"type": "string", "enum": list(task_types)},
            "question": {"type": "string"},
            "answer": {"type": "string"},
        },
        "required": ["task_type", "question", "answer"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"qa": {"type": "array", "items": item}},
        "required": ["qa"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "qa_pairs", "strict": True, "schema": schema}}


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
