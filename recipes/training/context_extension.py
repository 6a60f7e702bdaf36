r"""Phase 1, LLM context extension: continued pre-training of the Qwen2.5 LLM on packed long text (SlimPajama in
the paper) with the RoPE base scaled (1M -> 1B) and zigzag ring-attention sequence parallelism.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/context_extension.py \
    --config recipes/prolongvid-7b/context_extension.yaml
```
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from recipes.training.collator import PackedTextCollator
from recipes.training.data import pack_text
from recipes.training.freezing import apply_freezing, count_trainable
from recipes.training.stage import FinishedStage, finish_stage, logger, maybe_apply_lora, setup_stage
from recipes.training.trainer import ProLongVidSFTTrainer, enable_ring_attention


def train(script_args, training_args, model_args) -> None:
    """Extend the context of the causal LLM at `model_name_or_path` (parsed recipe arguments)."""
    # ------------------------------------------------------------------ setup
    sequence_parallel = setup_stage(script_args, training_args, model_args)

    # ------------------------------------------------------------------ data
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    source = Path(script_args.dataset_name)
    text_files = sorted(source.glob("*.txt")) if source.is_dir() else [source]
    blocks = pack_text(tokenizer, text_files, script_args.context_length, max_blocks=script_args.max_train_samples)
    logger.info("%d packed blocks of %d tokens from %s", len(blocks), script_args.context_length, source)

    # ------------------------------------------------------------------ model
    config = AutoConfig.from_pretrained(model_args.model_name_or_path)
    if script_args.rope_theta is not None:
        config.rope_parameters["rope_theta"] = script_args.rope_theta  # saved with the checkpoint
    config.max_position_embeddings = max(config.max_position_embeddings, script_args.context_length)
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path,
        config=config,
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
    )
    trainable = apply_freezing(model, script_args.trainable_modules)
    model = maybe_apply_lora(model, model_args)
    trainable = count_trainable(model)
    if sequence_parallel.sp_size > 1:
        enable_ring_attention(model, sequence_parallel)

    # ------------------------------------------------------------------ trainer
    trainer = ProLongVidSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=blocks,
        data_collator=PackedTextCollator(),
        processing_class=tokenizer,
        sequence_parallel=sequence_parallel,
        module_learning_rates=script_args.learning_rate_overrides(),
        loss_normalization=script_args.loss_normalization,
    )

    # ------------------------------------------------------------------ train
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    # ------------------------------------------------------------------ save + card
    finish_stage(
        FinishedStage(
            trainer,
            script_args,
            training_args,
            model_args,
            trainable,
            len(blocks),
            extra_record={
                "rope_theta": config.rope_parameters["rope_theta"],
                "context_length": script_args.context_length,
            },
        )
    )
