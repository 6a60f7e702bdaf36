"""Collators: video/image SFT rows -> model inputs with assistant-only labels, and packed text for context extension.

Training rows follow the team contract (`video`, `messages`, ...; image stages use an `image` column instead).
The processor's chat template renders the conversation, frames come from the frame cache when it holds the row's
`video_id` and from decoding the file otherwise (`processing.frame_cache.load_frames`), and only the
tokens inside the template's `{% generation %}` blocks (assistant text and its `<|im_end|>`) are trained on.

```python
>>> import tempfile
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
>>> from recipes.training.data import load_training_rows
>>> from recipes.training.tiny_inputs import write_tiny_dataset
>>> data = write_tiny_dataset(tempfile.mkdtemp())
>>> collator = VideoSFTCollator(build_tiny_processor(), num_frames=4, dataset_dir=data)
>>> batch = collator([load_training_rows(data, ["stage1"])[0]])  # input_ids, attention_mask, labels: (B, L)
>>> batch["pixel_values_videos"].shape  # (B, frames, 3, H, W)
torch.Size([1, 4, 3, 24, 24])
>>> collator.processor.tokenizer.decode(batch["labels"][batch["labels"] != -100])  # the only trained tokens
'A red square moves to the right.<|im_end|>'

```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature

from processing.frame_cache import FrameCache, load_frames
from recipes.parallel.sequence_parallel import IGNORE_INDEX


class VideoSFTCollator:
    """Turn training rows into a right-padded batch whose labels are the assistant tokens only.

    Args:
        processor: a `ProLongVidProcessor` (chat template + placeholder expansion).
        num_frames: frames sampled uniformly from every video (the stage's frame count); None for image stages.
        dataset_dir: base directory of relative `video` / `image` paths.
        frame_size: decode frames at this square size; default: the video processor's input size.
        max_length: longest sequence kept; text after the last placeholder may be cut, placeholders never.
        frame_cache: read frames of cached videos (by the row's `video_id`) instead of decoding them.
    """

    def __init__(
        self,
        processor,
        num_frames: int | None,
        dataset_dir: str | Path | None = None,
        frame_size: int | None = None,
        max_length: int | None = None,
        frame_cache: FrameCache | None = None,
    ):
        self.processor = processor
        self.num_frames = num_frames
        self.dataset_dir = Path(dataset_dir) if dataset_dir else None
        self.frame_size = frame_size or processor.video_processor.size["height"]
        self.max_length = max_length
        self.frame_cache = frame_cache

    def _resolve(self, path: str) -> str:
        if Path(path).is_absolute() or self.dataset_dir is None:
            return path
        return str(self.dataset_dir / path)

    def _conversation(self, row: dict) -> list[dict]:
        conversation = []
        for message in row["messages"]:
            content = []
            for item in message["content"]:
                if item["type"] == "video":
                    if self.num_frames is None:
                        raise ValueError("A row holds a video but num_frames is not set: add num_frames to the YAML.")
                    if not row.get("video"):
                        raise ValueError(f"Row {row.get('video_id', '?')} has a video item but no `video` path.")
                    frames, _ = load_frames(
                        self._resolve(row["video"]),
                        video_id=row.get("video_id"),
                        num_frames=self.num_frames,
                        cache=self.frame_cache,
                        size=self.frame_size,
                    )
                    content.append({"type": "video", "video": frames})
                elif item["type"] == "image":
                    if not row.get("image"):
                        raise ValueError(f"Row {row.get('video_id', '?')} has an image item but no `image` path.")
                    content.append(
                        {"type": "image", "image": np.array(Image.open(self._resolve(row["image"])).convert("RGB"))}
                    )
                elif item["type"] == "text":
                    content.append({"type": "text", "text": item["text"]})
                else:
                    raise ValueError(f"Unknown content type {item['type']!r}; rows hold text, image or video items.")
            conversation.append({"role": message["role"], "content": content})
        return conversation

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.processor.apply_chat_template(
            [self._conversation(row) for row in rows],
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            processor_kwargs={"padding": True, "padding_side": "right"},
        )
        # Tensors only now: transformers aligns the assistant mask by walking token offsets one by one, which is
        # several times slower over tensors than over lists at 10K+ tokens.
        batch = dict(BatchFeature(dict(batch), tensor_type="pt"))
        trained = batch.pop("assistant_masks").bool() & batch["attention_mask"].bool()
        for token_id in (self.processor.video_token_id, self.processor.image_token_id):
            trained &= batch["input_ids"] != token_id
        labels = batch["input_ids"].masked_fill(~trained, IGNORE_INDEX)
        if self.max_length is not None and labels.shape[1] > self.max_length:
            batch, labels = self._truncate(batch, labels)
        if not (labels != IGNORE_INDEX).any():
            ids = [row.get("video_id", "?") for row in rows]
            raise ValueError(
                f"Every label of the batch {ids} is masked: no assistant tokens survive. Check that the rows have an "
                "assistant turn with text and that max_length leaves room for it."
            )
        batch["labels"] = labels
        return batch

    def _truncate(self, batch: dict, labels: torch.Tensor):
        media = (batch["input_ids"] == self.processor.video_token_id) | (
            batch["input_ids"] == self.processor.image_token_id
        )
        if media[:, self.max_length :].any():
            raise ValueError(
                f"A sequence of {labels.shape[1]} tokens exceeds max_length={self.max_length} inside its video/image "
                "placeholders; raise max_length or lower num_frames."
            )
        keep = self.max_length
        truncated = {
            key: value[:, :keep] if key in ("input_ids", "attention_mask") else value for key, value in batch.items()
        }
        return truncated, labels[:, :keep]


class PackedTextCollator:
    """Stack packed `input_ids` rows (all of one length) into `input_ids (B, L)` and `labels (B, L)`."""

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        input_ids = torch.tensor([row["input_ids"] for row in rows], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": input_ids.clone()}
