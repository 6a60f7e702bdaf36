"""Steps shared by the recipe scripts: setup, model loading, LoRA, and the end-of-stage save.

Each `recipes/<stage>.py` calls these in a straight line:

```python
script_args, training_args, model_args = parse_recipe_arguments()
state = setup_stage(script_args, training_args, stage="stage2")
model, processor = load_prolongvid(model_args)
...
finish_stage(trainer, processor, script_args, training_args, model_args, trainable, num_rows)
```
"""

from __future__ import annotations

import logging

import torch.distributed as dist
from transformers import set_seed

from recipes.handoff import write_stage_record
from recipes.model_card import write_model_card
from recipes.sequence_parallel import SequenceParallelState, init_sequence_parallel

logger = logging.getLogger("recipes")


def setup_stage(script_args, training_args, stage: str) -> SequenceParallelState:
    """Check the arguments belong to `stage`, enforce TRL's video settings, start distributed and SP groups."""
    if script_args.stage != stage:
        raise ValueError(
            f"This script trains {stage!r} but the config says stage={script_args.stage!r}: pass the YAML of {stage}."
        )
    # Video rows are collated by our own collator: TRL must not drop columns or tokenize the dataset itself.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    logging.basicConfig(level=logging.INFO if training_args.process_index == 0 else logging.WARNING)
    logger.info("stage %s on %d process(es)", stage, training_args.world_size)  # starts torch.distributed
    set_seed(training_args.seed)
    return init_sequence_parallel(script_args.sequence_parallel_size)


def load_prolongvid(model_args, model_path: str | None = None):
    """`(model, processor)` of a ProLongVid checkpoint (registers the model classes on import)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import modeling_prolongvid  # noqa: F401

    path = model_path or model_args.model_name_or_path
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
        trust_remote_code=False,
    )
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=False)


# The language model's attention and MLP projections; never the vision tower's (SigLIP names some layers alike).
LORA_TARGET_MODULES = r"^(?!.*vision_tower).*layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$"


def maybe_apply_lora(model, model_args):
    """Wrap `model` with peft LoRA adapters when `--use_peft` is set: the base model is frozen, the adapters (on the
    language model unless `--lora_target_modules` says otherwise) and `--lora_modules_to_save` train."""
    if not model_args.use_peft:
        return model
    from peft import get_peft_model
    from trl import get_peft_config

    config = get_peft_config(model_args)
    if model_args.lora_target_modules is None:
        config.target_modules = LORA_TARGET_MODULES
    return get_peft_model(model, config)


def finish_stage(
    trainer,
    processor,
    script_args,
    training_args,
    model_args,
    trainable: dict[str, int],
    num_rows: int,
    num_frames: int | None,
    extra_record: dict | None = None,
) -> None:
    """Save weights + processor, the stage record and the model card; then close the process group cleanly."""
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        processor.save_pretrained(training_args.output_dir)
        write_stage_record(
            training_args.output_dir,
            stage=script_args.stage,
            started_from=model_args.model_name_or_path,
            num_frames=num_frames,
            data=script_args.subsets(),
            **(extra_record or {}),
        )
        write_model_card(
            training_args.output_dir,
            stage=script_args.stage,
            base_model=model_args.model_name_or_path,
            num_frames=num_frames,
            data=script_args.subsets(),
            dataset_dir=script_args.dataset_name,
            num_rows=num_rows,
            trainable=trainable,
            hyperparameters={
                "learning_rate": training_args.learning_rate,
                "module_learning_rates": ", ".join(script_args.module_learning_rates) or "none",
                "lr_scheduler_type": training_args.lr_scheduler_type,
                "warmup_steps": training_args.warmup_steps,
                "num_train_epochs": training_args.num_train_epochs,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                "sequence_parallel_size": script_args.sequence_parallel_size,
                "bf16": training_args.bf16,
                "world_size": training_args.world_size,
            },
        )
    trainer.accelerator.wait_for_everyone()
    if dist.is_initialized():
        dist.destroy_process_group()  # avoids a rare SIGABRT of rank 1 at exit (gloo)
