"""Row checks when a stage's dataset is loaded: a row that cannot train as written is dropped (or refused) with its
id and reason, never cut short and never replaced.

A row is dropped when
- it has no assistant turn, an assistant turn whose text is None (it would train on the word "None") or empty (it
  would train on the end token only), or any text item that is None;
- a video or image item has no path in the row, or its file does not exist (a video the frame cache holds needs no
  file);
- its tokens (text plus the placeholders of its media at the stage's frame count) exceed `max_length`.

Every kept row gets a `length` column, its exact token count, which the length-grouped sampler
(`train_sampling_strategy: batch_rebalance`) reads. Media that exist but cannot be decoded are found while training
(the collator skips and counts them, `media_errors`).

```python
>>> import tempfile
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
>>> from recipes.training.collator import VideoSFTCollator
>>> from recipes.training.data import load_training_rows
>>> from recipes.training.tiny_inputs import write_tiny_dataset
>>> data = write_tiny_dataset(tempfile.mkdtemp())
>>> collator = VideoSFTCollator(build_tiny_processor(), num_frames=4, dataset_dir=data, max_length=90)
>>> rows, report = validate_rows(load_training_rows(data, ["stage1"]), collator)
>>> list(rows["video_id"]), list(rows["length"])  # tokens: 4 frames x 6 placeholders + the text
(['stage1_1', 'stage1_2', 'stage1_3'], [82, 82, 90])
>>> print(report.summary())
1 of 4 rows cannot train and are dropped: 1 longer than max_length (e.g. stage1_0: 94 tokens > max_length 90)

```
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datasets import Dataset
from PIL import Image

logger = logging.getLogger("recipes")
DROPPED_ROWS_FILE = "dropped_rows.jsonl"  # written into the stage's output_dir


@dataclass
class DroppedRow:
    """One row that cannot train: its position in the loaded dataset, its id, the kind of problem and its details."""

    index: int
    row_id: str
    kind: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class ValidationReport:
    """What `validate_rows` kept and dropped."""

    num_rows: int
    dropped: list[DroppedRow] = field(default_factory=list)

    def counts_by_reason(self) -> dict[str, int]:
        return dict(Counter(row.kind for row in self.dropped))

    def summary(self) -> str:
        if not self.dropped:
            return f"all {self.num_rows} rows can train"
        first = {}
        for row in self.dropped:
            first.setdefault(row.kind, row)
        parts = [
            f"{count} {kind} (e.g. {first[kind].row_id}: {first[kind].detail})"
            for kind, count in self.counts_by_reason().items()
        ]
        return f"{len(self.dropped)} of {self.num_rows} rows cannot train and are dropped: " + "; ".join(parts)

    def write(self, path: str | Path) -> Path:
        """Every dropped row as one JSON line (`index`, `row_id`, `kind`, `detail`, `reason`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({**asdict(row), "reason": row.reason}) + "\n" for row in self.dropped))
        return path


def _problem(row: dict, collator) -> tuple[str, str] | None:
    """`(kind, detail)` of why `row` cannot train, or None."""
    messages = row.get("messages") or []
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant turn", "nothing to train on"
    for message in messages:
        texts = [item.get("text") for item in message["content"] if item["type"] == "text"]
        if any(text is None for text in texts):
            if message["role"] == "assistant":
                return "assistant text is None", "it would train on the word 'None'"
            return f"{message['role']} text is None", "a text item holds no text"
        if message["role"] == "assistant" and not "".join(texts).strip():
            return "empty assistant text", "it would train on the end token only"
    for media in ("video", "image"):
        if not any(item["type"] == media for message in messages for item in message["content"]):
            continue
        if not row.get(media):
            return f"{media} without a path", f"the row has a {media} item but no `{media}` value"
        cached = media == "video" and collator.frame_cache is not None and row.get("video_id") in collator.frame_cache
        if not cached and not Path(collator.resolve(row[media])).is_file():
            return f"{media} file not found", collator.resolve(row[media])
    return None


def _rendered(row: dict, collator) -> tuple[str, int]:
    """`(text, media_tokens)`: the row's chat text with one placeholder per media item, and the tokens its media
    add beyond those placeholders."""
    processor = collator.processor
    conversation, media_tokens = [], 0
    for message in row["messages"]:
        content = []
        for item in message["content"]:
            if item["type"] == "text":
                content.append({"type": "text", "text": item["text"]})
                continue
            content.append({"type": item["type"]})
            if item["type"] == "video":
                media_tokens += processor.num_video_tokens(collator.frames_for(row)) - 1
            else:
                with Image.open(collator.resolve(row["image"])) as image:
                    width, height = image.size
                media_tokens += processor._get_num_multimodal_tokens(image_sizes=[(height, width)]).num_image_tokens[0]
                media_tokens -= 1
        conversation.append({"role": message["role"], "content": content})
    return processor.apply_chat_template(conversation, tokenize=False), media_tokens


def count_tokens(row: dict, collator) -> int:
    """The exact length of `row` as `collator` tokenizes it: its rendered text plus its media placeholders."""
    text, media_tokens = _rendered(row, collator)
    return len(collator.processor.tokenizer(text, add_special_tokens=False)["input_ids"]) + media_tokens


def validate_rows(rows: Dataset, collator, chunk_size: int = 1024) -> tuple[Dataset, ValidationReport]:
    """Drop the rows of `rows` that cannot train with `collator` (its frame counts, paths, cache and `max_length`).

    Returns the kept rows, with a `length` column (tokens per row), and the report of the dropped ones. Texts are
    tokenized `chunk_size` at a time (the fast tokenizer spreads a chunk over the CPU cores).
    """
    report = ValidationReport(num_rows=len(rows))
    lengths, problems = [0] * len(rows), {}
    columns = [name for name in ("video_id", "messages", "video", "image", "subset") if name in rows.column_names]
    pending: list[tuple[int, str, int]] = []  # (index, text, media tokens) of rows still to measure

    def measure(chunk: list[tuple[int, str, int]]) -> None:
        tokenized = collator.processor.tokenizer([text for _, text, _ in chunk], add_special_tokens=False)
        for (index, _, media_tokens), ids in zip(chunk, tokenized["input_ids"]):
            lengths[index] = len(ids) + media_tokens
            if collator.max_length is not None and lengths[index] > collator.max_length:
                problems[index] = (
                    "longer than max_length",
                    f"{lengths[index]} tokens > max_length {collator.max_length}",
                )

    ids = []
    for index, row in enumerate(rows.select_columns(columns)):
        ids.append(str(row.get("video_id") or f"#{index}"))
        problem = _problem(row, collator)
        if problem is not None:
            problems[index] = problem
            continue
        pending.append((index, *_rendered(row, collator)))
        if len(pending) == chunk_size:
            measure(pending)
            pending = []
    if pending:
        measure(pending)
    report.dropped = [DroppedRow(index, ids[index], *problems[index]) for index in sorted(problems)]
    if "length" in rows.column_names:
        rows = rows.remove_columns("length")
    kept = [index for index in range(len(rows)) if index not in problems]
    return rows.add_column("length", lengths).select(kept), report


def apply_row_policy(
    rows: Dataset, collator, policy: str, report_path: str | Path | None, is_main_process: bool = True
) -> Dataset:
    """`validate_rows`, then act on `invalid_rows`: `drop` logs the summary and writes `report_path` (JSON lines,
    main process only); `error` refuses any invalid row. Either way a dataset with no row left is an error."""
    kept, report = validate_rows(rows, collator)
    logger.info("rows: %s", report.summary())
    if report.dropped and report_path is not None and is_main_process:
        logger.info("dropped rows listed in %s", report.write(report_path))
    if report.dropped and policy == "error":
        raise ValueError(f"{report.summary()}. Fix these rows, or set invalid_rows drop to train on the others.")
    if len(kept) == 0:
        raise ValueError(f"No row can train: {report.summary()}.")
    return kept
