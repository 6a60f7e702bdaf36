"""A tiny random-weight ProLongVid checkpoint, built offline in about a second.

It serves tests, recipes' smoke runs and the Space's embedded demo model: the same classes, processor, chat template
and file layout as the real 7B checkpoint, with a 2-layer Qwen2 (hidden 32), a 2-layer SigLIP on 24 px frames
(patch 8, a 3 x 3 grid pooled to 2 x 2) and a byte-level BPE tokenizer trained locally. Its answers are gibberish.

Example:

```python
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_checkpoint
>>> from transformers import AutoModelForImageTextToText
>>> model = AutoModelForImageTextToText.from_pretrained(build_tiny_checkpoint("/tmp/prolongvid-tiny"))
>>> model.config.num_video_tokens(num_frames=8)
48

```
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, SiglipVisionConfig

from .configuration_prolongvid import ProLongVidConfig
from .modeling_prolongvid import ProLongVidForConditionalGeneration, set_generation_defaults
from .processing_prolongvid import ProLongVidProcessor, grid_pinpoints

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
TRAINING_TEXT = """
You are a helpful assistant. Describe the video in detail. What happens at the start, in the middle and at the end?
A person walks a dog along a beach at sunset while waves roll in. The camera pans left, then zooms on a red car.
Summarize the events in order. How many people appear? What color is the ball? Why does the man turn around?
Answer the question about the image. The cat sits on a table next to a cup of coffee and a green plant.
Write a short story inspired by this clip. First, then, after that, finally, before, while, because, so.
0 1 2 3 4 5 6 7 8 9 seconds minutes frame scene segment caption question answer yes no left right up down
""".strip()
IMAGE_SIZE = 24
PATCH_SIZE = 8


def build_tiny_tokenizer(vocab_size: int = 400, media_tokens: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML's special tokens and, unless `media_tokens=False` (upstream's
    tokenizers have none), `<image>` / `<video>`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS if media_tokens else SPECIAL_TOKENS[:3],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT.splitlines() * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )


def build_tiny_processor(**config_overrides) -> ProLongVidProcessor:
    """The processor of the tiny checkpoint (24 px tiles and frames, tiny tokenizer, ChatML template) for the tiny
    config with `config_overrides`, e.g. `pooled_grid_size=3`.

    >>> build_tiny_processor(pooled_grid_size=3).num_video_tokens(num_frames=1)  # 3 * (3 + 1)
    12
    """
    tokenizer = build_tiny_tokenizer()
    return ProLongVidProcessor.from_config(build_tiny_config(tokenizer, **config_overrides), tokenizer)


def build_tiny_config(tokenizer, **overrides) -> ProLongVidConfig:
    """A `ProLongVidConfig` sized for CPU tests; `overrides` set any top-level config field."""
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        vision_use_head=False,
    )
    text = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    fields = {
        "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
        "video_token_index": tokenizer.convert_tokens_to_ids("<video>"),
        "image_grid_pinpoints": grid_pinpoints(IMAGE_SIZE, max_grid=(2, 2)),
        "pooled_grid_size": 2,
        "num_frames": 8,
        **overrides,
    }
    return ProLongVidConfig(vision_config=vision, text_config=text, **fields)


def build_tiny_checkpoint(output_dir: str | Path, seed: int = 0, **config_overrides) -> Path:
    """Write a tiny random ProLongVid model + processor to `output_dir` and return the path.

    Args:
        output_dir: where to save (created if missing); loads with `AutoModelForImageTextToText.from_pretrained`.
        seed: torch seed for the random weights, so equal seeds give equal checkpoints.
        config_overrides: top-level `ProLongVidConfig` fields, e.g. `pooled_grid_size=3` or
            `video_newline_position="frame"` (the processor follows the config: `ProLongVidProcessor.from_config`).
    """
    output_dir = Path(output_dir)
    tokenizer = build_tiny_tokenizer()
    config = build_tiny_config(tokenizer, **config_overrides)
    processor = ProLongVidProcessor.from_config(config, tokenizer)
    torch.manual_seed(seed)
    model = ProLongVidForConditionalGeneration(config)
    set_generation_defaults(model, tokenizer)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


__all__ = ["build_tiny_checkpoint", "build_tiny_config", "build_tiny_processor", "build_tiny_tokenizer"]
