r"""Supervised fine-tuning of a ProLongVid checkpoint on image or video training rows: what trains for the image
stages (knowledge, single-image SFT), the three progressive video stages and the mixed single-stage baseline.

The stage YAML holds the hyper-parameters, frames, data and trainable modules; any entry script runs it:

```bash
accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/stage2.py \
    --config recipes/prolongvid-7b/stage2.yaml [--any_field value ...]
```
"""

from __future__ import annotations

from recipes.training.collator import VideoSFTCollator
from recipes.training.data import open_frame_cache
from recipes.training.freezing import apply_freezing, count_trainable
from recipes.training.stage import (
    FinishedStage,
    finish_stage,
    load_prolongvid,
    load_stage_rows,
    logger,
    maybe_apply_lora,
    setup_stage,
)
from recipes.training.trainer import ProLongVidSFTTrainer, enable_ring_attention


def frame_count_groups(rows, collator: VideoSFTCollator) -> list[int | None] | None:
    """Every row's frame count (`collator.frames_for`) when the rows have more than one, else None."""
    columns = [name for name in ("num_frames", "subset") if name in rows.column_names]
    counts = [collator.frames_for(row) for row in rows.select_columns(columns)]
    return counts if len(set(counts)) > 1 else None


def train(script_args, training_args, model_args) -> None:
    """Train one SFT stage from parsed recipe arguments (`parse_recipe_arguments`)."""
    # ------------------------------------------------------------------ setup
    sequence_parallel = setup_stage(script_args, training_args, model_args)

    # ------------------------------------------------------------------ model
    model, processor = load_prolongvid(model_args)
    frames_by_subset = script_args.frames_by_subset()
    frame_counts = [count for count in (script_args.num_frames, *frames_by_subset.values()) if count is not None]
    if frame_counts and max(frame_counts) > model.config.max_frames:
        raise ValueError(f"num_frames={max(frame_counts)} exceeds the model's max_frames={model.config.max_frames}.")
    trainable = apply_freezing(model, script_args.trainable_modules)
    model = maybe_apply_lora(model, model_args)
    trainable = count_trainable(model)
    if sequence_parallel.sp_size > 1:
        enable_ring_attention(model, sequence_parallel)
    if training_args.activation_checkpointing:
        model.config.use_cache = False
    logger.info("trainable parameters per module: %s", trainable)

    # ------------------------------------------------------------------ data
    frame_cache = open_frame_cache(script_args.frame_cache_dir, script_args.dataset_name)
    logger.info("frame cache: %s", f"{len(frame_cache)} videos" if frame_cache is not None else "none (decoding)")
    collator = VideoSFTCollator(
        processor,
        num_frames=script_args.num_frames,
        dataset_dir=script_args.dataset_name,
        frame_size=script_args.frame_size,
        max_length=training_args.max_length,
        frame_cache=frame_cache,
        label_mask=script_args.label_mask,
        subset_num_frames=frames_by_subset,
        media_errors=script_args.media_errors,
        clip_cache=script_args.clip_cache,
    )
    rows = load_stage_rows(script_args, training_args, collator)
    groups = frame_count_groups(rows, collator) if training_args.per_device_train_batch_size > 1 else None
    if groups is not None:
        logger.info("per-device batches of one frame count each: %s", sorted(set(groups), key=str))

    # ------------------------------------------------------------------ trainer
    trainer = ProLongVidSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
        sequence_parallel=sequence_parallel,
        module_learning_rates=script_args.learning_rate_overrides(),
        loss_normalization=script_args.loss_normalization,
        batch_groups=groups,
    )

    # ------------------------------------------------------------------ train
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    # ------------------------------------------------------------------ save + card
    if script_args.num_frames is not None:
        model.config.num_frames = script_args.num_frames  # the default for inference on this checkpoint
    extra = {"num_frames_by_subset": frames_by_subset} if frames_by_subset else {}
    finish_stage(
        FinishedStage(
            trainer,
            script_args,
            training_args,
            model_args,
            trainable,
            len(rows),
            num_frames=script_args.num_frames,
            extra_record={**extra, "skipped_media": trainer.skipped_media},
        )
    )
