"""Collators: video/image SFT rows -> model inputs with labels, and packed text for context extension.

Training rows follow the team contract (`video`, `messages`, ...; image stages use an `image` column instead).
The processor's chat template renders the conversation, frames come from the frame cache when it holds the row's
`video_id` and from decoding the file otherwise (`processing.frame_cache.load_frames`).

Which tokens are trained on (`label_mask`, media placeholders and padding never):
- `upstream` (upstream's `preprocess_qwen`): every assistant turn whole, from its `<|im_start|>assistant\n` header to
  the `\n` after its `<|im_end|>`, plus every `<|im_start|>`, `<|im_end|>` and `\n` token of every turn (system and
  user turns included);
- `assistant`: only the tokens inside the template's `{% generation %}` blocks (assistant text and its `<|im_end|>`).

A row whose video or image cannot be read (missing, corrupt) is skipped, never replaced by another row: it stays in
the batch with blank media and no trained token (its loss weight is zero, the ranks stay in step), it is logged with
its id and counted in `batch["skipped_media"] (B,)`; `media_errors="raise"` stops training instead. A batch longer
than `max_length` is an error: `recipes.training.validation.validate_rows` drops such rows, with a report, at load.

```python
>>> import tempfile
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
>>> from recipes.training.data import load_training_rows
>>> from recipes.training.tiny_inputs import write_tiny_dataset
>>> data = write_tiny_dataset(tempfile.mkdtemp())
>>> collator = VideoSFTCollator(build_tiny_processor(), num_frames=4, dataset_dir=data, label_mask="assistant")
>>> batch = collator([load_training_rows(data, ["stage1"])[0]])  # input_ids, attention_mask, labels: (B, L)
>>> batch["pixel_values_videos"].shape  # (B, frames, 3, H, W)
torch.Size([1, 4, 3, 24, 24])
>>> batch["skipped_media"]  # rows whose media could not be read
tensor([False])
>>> collator.processor.tokenizer.decode(batch["labels"][batch["labels"] != -100])  # the only trained tokens
'A red square moves to the right.<|im_end|>'

```
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature

from processing.errors import VideoReadError
from processing.frame_cache import FrameCache, load_frames
from recipes.parallel.sequence_parallel import IGNORE_INDEX
from recipes.training.arguments import LABEL_MASKS, MEDIA_ERROR_POLICIES

# What reading a row's video or image raises when the file is missing, corrupt or not media (PIL's
# UnidentifiedImageError and FileNotFoundError are OSErrors).
MEDIA_READ_ERRORS = (VideoReadError, OSError)
logger = logging.getLogger("recipes")


class MediaReadError(RuntimeError):
    """A training row's video or image cannot be read and `media_errors="raise"`."""


class VideoSFTCollator:
    """Turn training rows into a right-padded batch with labels (see the module docstring for which tokens train).

    Args:
        processor: a `ProLongVidProcessor` (chat template + placeholder expansion).
        num_frames: frames sampled uniformly from every video (the stage's frame count); None for image stages.
        dataset_dir: base directory of relative `video` / `image` paths.
        frame_size: decode frames at this square size; default: the video processor's input size.
        max_length: longest sequence allowed; a longer batch is an error (nothing is ever cut).
        frame_cache: read frames of cached videos (by the row's `video_id`) instead of decoding them.
        label_mask: `upstream` or `assistant`: which tokens are trained on.
        subset_num_frames: frames per video by the row's `subset` (`load_training_rows` adds it), e.g.
            `{"stage1": 32, "stage2": 128, "stage3": 192}` for the mixed baseline; other rows use `num_frames`.
        media_errors: `skip` (log, count, train on the rest) or `raise` for a row whose media cannot be read.
        clip_cache: keep this many decoded clips in memory (least recently used out), keyed by video, frame count
            and size. Uniform sampling reads the same frames of a video every time, so rows that share a video (and
            every epoch after the first) decode it once; 0 decodes every time. A 192-frame clip at 32 px is 0.6 MB.
    """

    def __init__(
        self,
        processor,
        num_frames: int | None,
        dataset_dir: str | Path | None = None,
        frame_size: int | None = None,
        max_length: int | None = None,
        frame_cache: FrameCache | None = None,
        label_mask: str = "upstream",
        subset_num_frames: dict[str, int] | None = None,
        media_errors: str = "skip",
        clip_cache: int = 0,
    ):
        if label_mask not in LABEL_MASKS:
            raise ValueError(f"label_mask={label_mask!r}; use one of {LABEL_MASKS}.")
        if media_errors not in MEDIA_ERROR_POLICIES:
            raise ValueError(f"media_errors={media_errors!r}; use one of {MEDIA_ERROR_POLICIES}.")
        self.processor = processor
        self.num_frames = num_frames
        self.dataset_dir = Path(dataset_dir) if dataset_dir else None
        self.frame_size = frame_size or processor.video_processor.size["height"]
        self.max_length = max_length
        self.frame_cache = frame_cache
        self.label_mask = label_mask
        self.subset_num_frames = dict(subset_num_frames or {})
        self.media_errors = media_errors
        if clip_cache < 0:
            raise ValueError(f"clip_cache must be >= 0 clips, got {clip_cache}.")
        self.clip_cache_size = clip_cache
        self._clips: OrderedDict[tuple, np.ndarray] = OrderedDict()
        tokenizer = processor.tokenizer
        self.turn_start_id, self.turn_end_id = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        if len(newline) != 1 or tokenizer.unk_token_id in (self.turn_start_id, self.turn_end_id):
            raise ValueError("The tokenizer lacks ChatML's <|im_start|> / <|im_end|> tokens or a single-token '\\n'.")
        self.newline_id = newline[0]

    def frames_for(self, row: dict) -> int | None:
        """Frames sampled from this row's video: the row's own `num_frames` when it has one (upstream's loader honours
        it; imported LLaVA-NeXT rows may carry it), else its subset's count when `subset_num_frames` names it, else
        the stage's."""
        own = row.get("num_frames")
        if own:
            limit = self.processor.video_processor.max_frames
            if limit is not None and own > limit:
                raise ValueError(
                    f"Row {row.get('video_id', '?')} asks for num_frames={own}, more than the model's max_frames="
                    f"{limit}: lower the row's num_frames or train a model with a larger max_frames."
                )
            return int(own)
        return self.subset_num_frames.get(row.get("subset"), self.num_frames)

    def resolve(self, path: str) -> str:
        """A row's media path: relative paths are under `dataset_dir`."""
        if Path(path).is_absolute() or self.dataset_dir is None:
            return path
        return str(self.dataset_dir / path)

    def _video(self, row: dict, blank: bool) -> np.ndarray:
        num_frames = self.frames_for(row)
        if num_frames is None:
            raise ValueError("A row holds a video but num_frames is not set: add num_frames to the YAML.")
        if not row.get("video"):
            raise ValueError(f"Row {row.get('video_id', '?')} has a video item but no `video` path.")
        if blank:
            return np.zeros((num_frames, self.frame_size, self.frame_size, 3), dtype=np.uint8)
        path = self.resolve(row["video"])
        key = (path, row.get("video_id"), num_frames, self.frame_size)
        if key in self._clips:  # a copy: the processor may write into the frames it is given
            self._clips.move_to_end(key)
            return self._clips[key].copy()
        frames, _ = load_frames(
            path, video_id=row.get("video_id"), num_frames=num_frames, cache=self.frame_cache, size=self.frame_size
        )
        if self.clip_cache_size:
            self._clips[key] = frames.copy()
            self._clips[key].flags.writeable = False
            if len(self._clips) > self.clip_cache_size:
                self._clips.popitem(last=False)
        return frames

    def _image(self, row: dict, blank: bool) -> np.ndarray:
        if not row.get("image"):
            raise ValueError(f"Row {row.get('video_id', '?')} has an image item but no `image` path.")
        if blank:
            return np.zeros((self.frame_size, self.frame_size, 3), dtype=np.uint8)
        with Image.open(self.resolve(row["image"])) as image:
            return np.array(image.convert("RGB"))

    def _conversation(self, row: dict, blank: bool = False) -> list[dict]:
        """The row's messages in the processor's format, with its media decoded (or blank stand-ins)."""
        conversation = []
        for message in row["messages"]:
            content = []
            for item in message["content"]:
                if item["type"] == "video":
                    content.append({"type": "video", "video": self._video(row, blank)})
                elif item["type"] == "image":
                    content.append({"type": "image", "image": self._image(row, blank)})
                elif item["type"] == "text":
                    content.append({"type": "text", "text": item["text"]})
                else:
                    raise ValueError(f"Unknown content type {item['type']!r}; rows hold text, image or video items.")
            conversation.append({"role": message["role"], "content": content})
        return conversation

    def _read(self, row: dict) -> tuple[list[dict], bool]:
        """`(conversation, skipped)`: blank media and `skipped=True` when the row's media cannot be read."""
        try:
            return self._conversation(row), False
        except MEDIA_READ_ERRORS as error:
            row_id = row.get("video_id", "?")
            if self.media_errors == "raise":
                raise MediaReadError(
                    f"Row {row_id}: its media cannot be read ({error}). Fix or remove the file, or set media_errors "
                    "skip to train on without this row."
                ) from error
            logger.warning("Skipping row %s: its media cannot be read (%s); it is not trained on.", row_id, error)
            return self._conversation(row, blank=True), True

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        conversations, skipped = zip(*(self._read(row) for row in rows))
        frame_counts = {self.frames_for(row) for row in rows if row.get("video")}
        if len(frame_counts) > 1:
            raise ValueError(
                f"One batch holds videos of {sorted(frame_counts)} frames; batch rows of one frame count together "
                "(the recipes' trainer does, recipes/training/sampling.py) or use per_device_train_batch_size 1."
            )
        batch = self.processor.apply_chat_template(
            list(conversations),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            processor_kwargs={"padding": True, "padding_side": "right"},
        )
        # Tensors only now: transformers aligns the assistant mask by walking token offsets one by one, which is
        # several times slower over tensors than over lists at 10K+ tokens.
        batch = dict(BatchFeature(dict(batch), tensor_type="pt"))
        ids = [row.get("video_id", "?") for row in rows]
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            raise ValueError(
                f"Rows {ids} have {lengths} tokens, more than max_length={self.max_length}; nothing is cut. Load "
                "rows with recipes.training.validation.validate_rows (the recipes do), which drops and reports them, "
                "or raise max_length."
            )
        skipped = torch.tensor(skipped)
        answer = batch.pop("assistant_masks").bool() & batch["attention_mask"].bool()
        trained = self._upstream_mask(batch["input_ids"], answer) if self.label_mask == "upstream" else answer
        trained &= batch["attention_mask"].bool() & ~skipped.unsqueeze(1)
        for token_id in (self.processor.video_token_id, self.processor.image_token_id):
            trained &= batch["input_ids"] != token_id
        without_answer = [
            row_id for row_id, row_answer, skip in zip(ids, answer, skipped) if not (row_answer.any() or skip)
        ]
        if without_answer:
            raise ValueError(
                f"Rows {without_answer} have no assistant text to train on. Check that every row has an assistant "
                "turn with text (validate_rows drops rows that do not)."
            )
        batch["labels"] = batch["input_ids"].masked_fill(~trained, IGNORE_INDEX)
        batch["skipped_media"] = skipped
        return batch

    def _upstream_mask(self, input_ids: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
        """Whole assistant turns (a turn runs from its `<|im_start|>` to the next one) plus every turn marker and
        newline token: `preprocess_qwen`'s labels. `input_ids`, `answer (B, L)` -> `(B, L)` bool."""
        turn = torch.cumsum(input_ids == self.turn_start_id, dim=1)  # (B, L): index of the turn each token is in
        rows = torch.arange(turn.shape[0]).unsqueeze(1).expand_as(turn)
        assistant_turns = torch.zeros(turn.shape[0], int(turn.max()) + 1, dtype=torch.bool)
        assistant_turns[rows[answer], turn[answer]] = True
        whole_turns = torch.gather(assistant_turns, 1, turn)
        markers = torch.isin(input_ids, torch.tensor([self.turn_start_id, self.turn_end_id, self.newline_id]))
        return whole_turns | markers


class PackedTextCollator:
    """Stack packed `input_ids` rows (all of one length) into `input_ids (B, L)` and `labels (B, L)`."""

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        input_ids = torch.tensor([row["input_ids"] for row in rows], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}
