"""Steps shared by the recipe trainers: setup (with the starting-checkpoint check), model loading, LoRA, and the
end-of-stage save.

Each trainer (`recipes/training/sft.py`, ...) calls these in a straight line:

```python
sequence_parallel = setup_stage(script_args, training_args, model_args)  # refuses a wrong starting checkpoint
model, processor = load_prolongvid(model_args)
...
finish_stage(FinishedStage(trainer, script_args, training_args, model_args, trainable, num_rows=len(rows)))
```
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch.distributed as dist
from transformers import set_seed

from recipes.parallel.ring_attention import set_sequence_parallel_group
from recipes.parallel.sequence_parallel import SequenceParallelState, init_sequence_parallel
from recipes.training.data import load_training_rows
from recipes.training.handoff import check_starting_checkpoint, write_stage_record
from recipes.training.model_card import write_model_card
from recipes.training.validation import DROPPED_ROWS_FILE, apply_row_policy

if TYPE_CHECKING:
    from transformers import Trainer
    from trl import ModelConfig, SFTConfig

    from recipes.training.trl_arguments import ProLongVidScriptArguments

logger = logging.getLogger("recipes")


def setup_stage(script_args, training_args, model_args) -> SequenceParallelState:
    """Enforce TRL's video settings, start distributed and the SP groups, derive gradient accumulation from
    `global_batch_size`, and check the starting checkpoint.

    Raises `WrongCheckpointError` unless `model_name_or_path` is of the YAML's `expected_checkpoint` kind and, when
    the YAML names `previous_stages`, was written by one of them.
    """
    # Video rows are collated by our own collator: TRL must not drop columns or tokenize the dataset itself.
    training_args.remove_unused_columns = False
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    logging.basicConfig(level=logging.INFO if training_args.process_index == 0 else logging.WARNING)
    logger.info("stage %s on %d process(es)", script_args.stage, training_args.world_size)  # starts torch.distributed
    set_seed(training_args.seed)
    sequence_parallel = init_sequence_parallel(script_args.sequence_parallel_size)
    if script_args.global_batch_size is not None:
        if training_args.deepspeed:
            raise ValueError(
                "global_batch_size derives gradient_accumulation_steps after --deepspeed has filled its config: "
                "launch DeepSpeed with an accelerate config (recipes/accelerate_configs/zero*.yaml) instead."
            )
        training_args.gradient_accumulation_steps = gradient_accumulation_steps(
            script_args.global_batch_size,
            sequence_parallel.dp_size,
            training_args.per_device_train_batch_size,
            training_args.gradient_accumulation_steps,
        )
    logger.info(
        "global batch %d = %d data-parallel ranks x per-device batch %d x %d accumulation steps",
        sequence_parallel.dp_size
        * training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps,
        sequence_parallel.dp_size,
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
    )
    check_starting_checkpoint(
        model_args.model_name_or_path,
        script_args.expected_checkpoint,
        script_args.previous_stages,
        script_args.stage,
    )
    return sequence_parallel


def gradient_accumulation_steps(global_batch_size: int, dp_size: int, per_device: int, given: int) -> int:
    """Accumulation steps that make `global_batch_size` samples per optimizer step on `dp_size` data-parallel ranks.

    `given` (the parsed `gradient_accumulation_steps`) must be 1 (TRL's default: derive) or agree.

    >>> gradient_accumulation_steps(256, dp_size=32, per_device=1, given=1)  # upstream's stage 2: 1 x 8 x 32 GPUs
    8
    >>> gradient_accumulation_steps(256, dp_size=24, per_device=1, given=1)
    Traceback (most recent call last):
        ...
    ValueError: global_batch_size=256 is not a multiple of 24 data-parallel ranks x per_device_train_batch_size 1 = 24; set global_batch_size to a multiple of 24 or change the number of processes (or per_device_train_batch_size).
    """
    per_step = dp_size * per_device
    if global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not a multiple of {dp_size} data-parallel ranks x "
            f"per_device_train_batch_size {per_device} = {per_step}; set global_batch_size to a multiple of "
            f"{per_step} or change the number of processes (or per_device_train_batch_size)."
        )
    derived = global_batch_size // per_step
    if given not in (1, derived):
        raise ValueError(
            f"gradient_accumulation_steps={given} disagrees with global_batch_size={global_batch_size} on {dp_size} "
            f"data-parallel ranks x per_device_train_batch_size {per_device} (which needs {derived}); drop "
            f"gradient_accumulation_steps (it is derived) or set global_batch_size {per_step * given}."
        )
    return derived


def load_stage_rows(script_args, training_args, collator):
    """The stage's training rows: its subsets loaded, then checked against `collator` (rows that cannot train are
    dropped and listed in `<output_dir>/dropped_rows.jsonl`, or refused, as `invalid_rows` says)."""
    rows = load_training_rows(script_args.dataset_name, script_args.subsets(), script_args.max_train_samples)
    logger.info("%d training rows from %s %s", len(rows), script_args.dataset_name, script_args.subsets())
    return apply_row_policy(
        rows,
        collator,
        script_args.invalid_rows,
        Path(training_args.output_dir) / DROPPED_ROWS_FILE,
        is_main_process=training_args.process_index == 0,
    )


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


@dataclass
class FinishedStage:
    """What `finish_stage` saves and records about one trained stage.

    Args:
        trainer: the trainer that ran; its `processing_class` (processor or tokenizer) is saved with the weights.
        script_args, training_args, model_args: the parsed recipe arguments.
        trainable: trainable parameter counts per module (`count_trainable`), for the model card.
        num_rows: training rows (or packed blocks) the stage saw.
        num_frames: frames per training video; None for stages without video.
        extra_record: more fields for the stage record (e.g. `rope_theta`).
    """

    trainer: Trainer
    script_args: ProLongVidScriptArguments
    training_args: SFTConfig
    model_args: ModelConfig
    trainable: dict[str, int]
    num_rows: int
    num_frames: int | None = None
    extra_record: dict = field(default_factory=dict)


def finish_stage(stage: FinishedStage) -> None:
    """Save weights + processor, the training log (`trainer_state.json`: loss per logging step), the stage record and
    the model card; then close the process group cleanly."""
    trainer, script_args, training_args = stage.trainer, stage.script_args, stage.training_args
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(training_args.output_dir)
        trainer.state.save_to_json(str(Path(training_args.output_dir) / "trainer_state.json"))
        write_stage_record(
            training_args.output_dir,
            stage=script_args.stage,
            started_from=stage.model_args.model_name_or_path,
            num_frames=stage.num_frames,
            data=script_args.subsets(),
            **stage.extra_record,
        )
        write_model_card(
            training_args.output_dir,
            stage=script_args.stage,
            base_model=stage.model_args.model_name_or_path,
            num_frames=stage.num_frames,
            data=script_args.subsets(),
            dataset_dir=script_args.dataset_name,
            num_rows=stage.num_rows,
            trainable=stage.trainable,
            hyperparameters={
                "learning_rate": training_args.learning_rate,
                "module_learning_rates": ", ".join(script_args.module_learning_rates) or "none",
                "lr_scheduler_type": training_args.lr_scheduler_type,
                "warmup_steps": training_args.warmup_steps,
                "num_train_epochs": training_args.num_train_epochs,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                "global_batch_size": training_args.per_device_train_batch_size
                * training_args.gradient_accumulation_steps
                * (training_args.world_size // script_args.sequence_parallel_size),
                "loss_normalization": script_args.loss_normalization,
                "label_mask": script_args.label_mask,
                "train_sampling_strategy": training_args.train_sampling_strategy,
                "sequence_parallel_size": script_args.sequence_parallel_size,
                "bf16": training_args.bf16,
                "world_size": training_args.world_size,
            },
        )
    trainer.accelerator.wait_for_everyone()
    # The ring attention's group is let go with the others while the interpreter is alive: a process group (and gloo's
    # worker threads) still referenced at interpreter exit has aborted rank 1 (SIGABRT), rarely, after a finished stage.
    set_sequence_parallel_group(None)
    if dist.is_initialized():
        dist.destroy_process_group()
