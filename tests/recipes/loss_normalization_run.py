"""One optimizer step of `ProLongVidSFTTrainer` per `loss_normalization`, run by `test_training_maths` under
`accelerate launch` with 2 CPU processes, per-device batch 1 and gradient accumulation 2 (and, as `sample-batched`,
`sample` at per-device batch 2 without accumulation): the 4 rows (of unequal lengths) make exactly one global batch. Plain SGD at learning rate 1, no clipping: the parameter update IS minus the
gradient. Rank 0 saves, per mode, the updated state dict and the logged loss.

```bash
accelerate launch --multi_gpu --num_processes 2 --mixed_precision no --dynamo_backend no \
    tests/recipes/loss_normalization_run.py OUTPUT_DIR
```
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

IGNORE = -100
# (input_ids, number of trailing tokens trained): 2, 4, 9 and 17 trained tokens.
ROWS = [
    (list(range(3, 9)), 2),
    (list(range(10, 19)), 4),
    (list(range(20, 34)), 9),
    (list(range(5, 27)), 17),
]


def build_model() -> Qwen2ForCausalLM:
    """The same tiny causal LM on every call (fixed seed)."""
    torch.manual_seed(0)
    config = Qwen2Config(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        vocab_size=40, max_position_embeddings=64, tie_word_embeddings=False,
    )  # fmt: skip
    return Qwen2ForCausalLM(config)


def training_rows() -> list[dict]:
    return [
        {"input_ids": ids, "labels": [IGNORE] * (len(ids) - trained) + ids[len(ids) - trained :]}
        for ids, trained in ROWS
    ]


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    length = max(len(row["input_ids"]) for row in rows)
    pad = [length - len(row["input_ids"]) for row in rows]
    return {
        "input_ids": torch.tensor([row["input_ids"] + [0] * n for row, n in zip(rows, pad)]),
        "attention_mask": torch.tensor([[1] * len(row["input_ids"]) + [0] * n for row, n in zip(rows, pad)]),
        "labels": torch.tensor([row["labels"] + [IGNORE] * n for row, n in zip(rows, pad)]),
    }


def main(output_dir: Path) -> None:
    import torch.distributed as dist
    from datasets import Dataset
    from trl import SFTConfig

    from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
    from recipes.training.trainer import ProLongVidSFTTrainer

    for mode, batch, accumulation in (("sample", 1, 2), ("token", 1, 2), ("sample-batched", 2, 1)):
        args = SFTConfig(
            output_dir=str(output_dir / mode), use_cpu=True, bf16=False, per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=1.0, lr_scheduler_type="constant",
            warmup_steps=0, max_grad_norm=0.0, weight_decay=0.0, logging_steps=1, report_to="none",
            save_strategy="no", dataloader_num_workers=0, remove_unused_columns=False,
            dataset_kwargs={"skip_prepare_dataset": True},
        )  # fmt: skip
        model = build_model()
        trainer = ProLongVidSFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(training_rows()), data_collator=collate,
            processing_class=build_tiny_tokenizer(), loss_normalization=mode.removesuffix("-batched"),
        )  # fmt: skip
        trainer.train()
        if trainer.is_world_process_zero():
            torch.save(model.state_dict(), output_dir / f"{mode}.pt")
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
            (output_dir / f"{mode}.json").write_text(json.dumps({"losses": losses, "world": args.world_size}))
        trainer.accelerator.wait_for_everyone()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
