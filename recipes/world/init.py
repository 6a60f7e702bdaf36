r"""Build the synthetic world's starting checkpoint: a tiny ProLongVid from scratch (random vision tower, projector and
language model, sized by a YAML) with a byte-level BPE tokenizer trained on the text of the built dataset's messages.

```bash
python -m recipes.world.init --config recipes/world/init.yaml --dataset runs/world/dataset --out runs/world/init
```

The output is a ProLongVid checkpoint (weights, config, processor, chat template) with a stage record
(`prolongvid_stage.json`, stage `world_init`), so `recipes/world/stage1.yaml` can start from it.

```python
>>> import tempfile
>>> from recipes.training.tiny_inputs import write_tiny_dataset
>>> from recipes.world.init import build_world_checkpoint, load_init_config
>>> out = build_world_checkpoint(load_init_config("recipes/world/init.yaml"), write_tiny_dataset(tempfile.mkdtemp()),
...                              tempfile.mkdtemp())
>>> from transformers import AutoConfig
>>> AutoConfig.from_pretrained(out).num_video_tokens(num_frames=192)  # 192 x 1 x (1 + 1)
384

```
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recipes.training.handoff import write_stage_record

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
STAGE = "world_init"


@dataclass(frozen=True)
class InitConfig:
    """The YAML's fields: `vision` / `text` / `prolongvid` are keyword arguments of `SiglipVisionConfig`,
    `Qwen2Config` and `ProLongVidConfig`; `vocab_size` is the tokenizer's; `seed` the weights'."""

    vision: dict = field(default_factory=dict)
    text: dict = field(default_factory=dict)
    prolongvid: dict = field(default_factory=dict)
    vocab_size: int = 600
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size {self.vocab_size} is too small: 256 bytes and the special tokens need 300.")


def load_init_config(path: str | Path) -> InitConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(data) - set(InitConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)}; known: {sorted(InitConfig.__dataclass_fields__)}")
    return InitConfig(**data)


def dataset_texts(dataset_dir: str | Path) -> list[str]:
    """Every message text of the dataset's configs with a `messages` column (the tokenizer's training corpus)."""
    import pyarrow.parquet as pq

    texts = []
    for file in sorted(Path(dataset_dir).glob("*/*.parquet")):
        if "messages" not in pq.read_schema(file).names:
            continue
        for messages in pq.read_table(file, columns=["messages"]).column("messages").to_pylist():
            for message in messages:
                texts.extend(part["text"] for part in message["content"] if part.get("text"))
    if not texts:
        raise ValueError(
            f"{dataset_dir} has no training rows (<config>/*.parquet with messages); run `dataset_builder build` first."
        )
    return texts


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` (ChatML special tokens, `<image>`, `<video>`) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts + ["system\nYou are a helpful assistant.\nuser\nassistant\n"], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )


def build_world_checkpoint(config: InitConfig, dataset_dir: str | Path, output_dir: str | Path) -> Path:
    """Train the tokenizer on `dataset_dir`'s messages, build the random model, save both to `output_dir`."""
    import torch
    from transformers import Qwen2Config, SiglipVisionConfig

    from modeling_prolongvid.configuration_prolongvid import ProLongVidConfig
    from modeling_prolongvid.modeling_prolongvid import ProLongVidForConditionalGeneration, set_generation_defaults
    from modeling_prolongvid.processing_prolongvid import ProLongVidProcessor, grid_pinpoints

    tokenizer = train_tokenizer(dataset_texts(dataset_dir), config.vocab_size)
    vision = SiglipVisionConfig(vision_use_head=False, **config.vision)
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config.text,
    )
    model_config = ProLongVidConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=grid_pinpoints(vision.image_size, max_grid=(2, 2)),
        **config.prolongvid,
    )
    processor = ProLongVidProcessor.from_config(model_config, tokenizer)
    torch.manual_seed(config.seed)
    model = ProLongVidForConditionalGeneration(model_config)
    set_generation_defaults(model, tokenizer)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    write_stage_record(
        output_dir, stage=STAGE, started_from=str(dataset_dir), init=json.loads(json.dumps(config.__dict__))
    )
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.world.init", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="recipes/world/init.yaml", help="sizes (default: %(default)s)")
    parser.add_argument("--dataset", required=True, help="the built dataset (its messages train the tokenizer)")
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    args = parser.parse_args(argv)
    print(build_world_checkpoint(load_init_config(args.config), args.dataset, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
