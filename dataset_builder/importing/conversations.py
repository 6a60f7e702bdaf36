"""A LLaVA-NeXT conversation (``[{"from": "human" | "gpt", "value": ...}, ...]``) -> the kit's chat messages.

The kit's chat template renders the result exactly as upstream's ``qwen_1_5`` preprocessing renders the original row
(``llava/train/train.py``: ``preprocess_multimodal`` then ``preprocess_qwen``), which means following upstream on:

* a first turn that is not from ``human`` is dropped;
* the one ``<image>`` placeholder of the first human turn moves to the start of the turn: upstream removes it, strips
  the text and writes ``<image>\\n`` + text; a turn that already starts with the placeholder is left as it is;
* ``QA_GT_caption_based_noisy`` (a marker left in some upstream data) is removed from every turn;
* every other text is kept byte for byte (no stripping).

``<video>`` is read as the same placeholder as ``<image>`` (upstream knows only ``<image>``, which its video rows use
too); the media item's type comes from the import's modality. A turn that starts with the placeholder glued to its
text (``"<image>Describe..."``) cannot be rendered identically -- the kit's template puts media on their own line --
and is imported with the text after the placeholder; it is counted as *normalized*.

Rows the kit cannot train on are refused with :class:`MalformedRow` naming the problem: no conversation, roles other
than human/gpt, no placeholder or several, a placeholder outside the first human turn, no assistant text.

Example:
    >>> from dataset_builder.importing.conversations import convert_conversation
    >>> turns = [{"from": "human", "value": "What happens? <image>"}, {"from": "gpt", "value": "A dog runs."},
    ...          {"from": "human", "value": "Where?"}, {"from": "gpt", "value": "On a beach."}]
    >>> converted = convert_conversation(turns, "video")
    >>> converted.messages[0]["content"]
    [{'type': 'video', 'text': None}, {'type': 'text', 'text': 'What happens?'}]
    >>> [m["role"] for m in converted.messages], converted.normalized, converted.answer_words
    (['user', 'assistant', 'user', 'assistant'], False, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

PLACEHOLDERS = ("<image>", "<video>")
NOISE_MARKER = "QA_GT_caption_based_noisy"
ROLES = {"human": "user", "gpt": "assistant"}
MEDIA_TYPES = ("video", "image")


class MalformedRow(ValueError):
    """A row that cannot become a training row; ``kind`` is a short machine-readable name of the problem."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Conversation:
    """The kit's chat ``messages`` (``TRAINING_FEATURES["messages"]``) of one row.

    Attributes:
        messages: ``[{"role": "user" | "assistant", "content": [{"type", "text"}, ...]}, ...]``; the media item
            (``text`` None) comes first in the first user turn.
        normalized: the placeholder was glued to its text; the kit renders a newline after it that upstream did not.
        answer_words: words of the longest assistant turn (the card's "caption length").
    """

    messages: list[dict]
    normalized: bool
    answer_words: int


def _placeholder_count(text: str) -> int:
    return sum(map(text.count, PLACEHOLDERS))


def _move_placeholder(value: str) -> tuple[str, bool]:
    """The first human turn's text once its placeholder is moved to its own line; and whether that was lossy."""
    token = next(token for token in PLACEHOLDERS if token in value)
    if value.startswith(token):  # upstream leaves such a turn untouched
        rest = value[len(token) :].replace(NOISE_MARKER, "")
        return (rest[1:], False) if rest.startswith("\n") else (rest.lstrip(), True)
    text = value.replace(token, "").strip().replace(NOISE_MARKER, "")
    return text, not text  # upstream strips "<image>\n" down to "<image>" when no text is left


def convert_conversation(turns: object, media_type: str) -> Conversation:
    """Convert upstream ``conversations`` of a row whose media (one video or one image) is ``media_type``.

    Raises:
        MalformedRow: the conversation is unusable (the message says why and what upstream would have done).
    """
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type={media_type!r}; use one of {MEDIA_TYPES}.")
    if not isinstance(turns, list) or not turns:
        raise MalformedRow("no_conversation", "`conversations` must be a non-empty list of {from, value} turns")
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise MalformedRow("bad_turn", f"conversations[{index}] is not an object with a string `value`")
        if turn.get("from") not in ROLES:
            raise MalformedRow(
                "bad_role", f"conversations[{index}].from is {turn.get('from')!r}; LLaVA-NeXT rows use human / gpt"
            )
    if turns[0]["from"] != "human":  # as upstream: a leading non-human turn is skipped
        turns = turns[1:]
        if not turns:
            raise MalformedRow("no_conversation", "the conversation has no human turn")
    first = _placeholder_count(turns[0]["value"])
    if first != 1:
        found = "no" if first == 0 else str(first)
        raise MalformedRow(
            "placeholder_count",
            f"the first human turn holds {found} <image>/<video> placeholders; a row of one {media_type} needs "
            "exactly one",
        )
    later = [index for index, turn in enumerate(turns[1:], start=1) if _placeholder_count(turn["value"])]
    if later:
        raise MalformedRow(
            "placeholder_position", f"turn(s) {later} hold a placeholder; only the first human turn may hold one"
        )
    answers = [turn["value"].replace(NOISE_MARKER, "") for turn in turns if turn["from"] == "gpt"]
    if not any(answer.strip() for answer in answers):
        raise MalformedRow("no_answer", "the conversation has no gpt turn with text: nothing to train on")
    text, normalized = _move_placeholder(turns[0]["value"])
    messages = [{"role": "user", "content": [{"type": media_type, "text": None}, {"type": "text", "text": text}]}]
    for turn in turns[1:]:
        value = turn["value"].replace(NOISE_MARKER, "")
        messages.append({"role": ROLES[turn["from"]], "content": [{"type": "text", "text": value}]})
    return Conversation(messages, normalized, max(len(answer.split()) for answer in answers))


@dataclass(frozen=True)
class ParsedRow:
    """One upstream row, checked and converted; its media is not looked at yet.

    Attributes:
        row_id: upstream ``id`` (``FILE:ROW`` when the row has none).
        media: the ``video`` / ``image`` path as written, or the embedded image ``bytes`` (Parquet rows).
        source: ``source`` when given (``--source``), else the row's ``data_source``, else ``fallback_source``.
        num_frames: the row's own frame count (see :func:`frames_of`).
        conversation: the converted messages.
    """

    row_id: str
    media: str | bytes
    source: str
    num_frames: int | None
    conversation: Conversation


def _media_of(row: dict, modality: str) -> str | bytes:
    other = "image" if modality == "video" else "video"
    value = row.get(modality)
    if value is None:
        if row.get(other) is not None:
            raise MalformedRow(
                "other_modality", f"the row holds {'an' if other == 'image' else 'a'} {other}, not a {modality}: "
                f"import it with --modality {other}"
            )  # fmt: skip
        raise MalformedRow("no_media", f"the row has no `{modality}`; text-only rows are not imported")
    if isinstance(value, list):
        if len(value) != 1:
            raise MalformedRow("several_media", f"the row holds {len(value)} {modality}s; one per row is supported")
        value = value[0]
    if isinstance(value, dict):  # datasets' Image feature in Parquet: {"bytes", "path"}
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, str)) and value:
        return value
    raise MalformedRow("no_media", f"`{modality}` must be a path or image bytes, got {type(value).__name__}")


def parse_row(row: object, modality: str, fallback_id: str, fallback_source: str, source: str | None) -> ParsedRow:
    """Check and convert one upstream row (``{"id", "video" | "image", "conversations", ...}``).

    Raises:
        MalformedRow: the row is not an object, has no usable media field, or its conversation is unusable.
    """
    if not isinstance(row, dict):
        raise MalformedRow("not_an_object", f"a row must be a JSON object, got {type(row).__name__}")
    media = _media_of(row, modality)
    conversation = convert_conversation(row.get("conversations"), modality)
    row_id = str(row["id"]) if row.get("id") is not None else fallback_id
    data_source = row.get("data_source") if isinstance(row.get("data_source"), str) else None
    return ParsedRow(row_id, media, source or data_source or fallback_source, frames_of(row), conversation)


def frames_of(row: dict) -> int | None:
    """A row's own ``num_frames`` (upstream samples that many frames instead of the stage's), or None.

    Upstream honours it only when it is a positive number; absent, null or <= 0 means "the stage's frame count".

    >>> frames_of({"num_frames": 64}), frames_of({"num_frames": 0}), frames_of({})
    (64, None, None)

    Raises:
        MalformedRow: ``num_frames`` is not a whole number.
    """
    value = row.get("num_frames")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise MalformedRow("bad_num_frames", f"num_frames must be a whole number, got {value!r}")
    return value if value is not None and value > 0 else None
