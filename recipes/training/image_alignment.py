r"""Image stage (a), image-text alignment: join the context-extended LLM with the SigLIP vision tower
(`modeling_prolongvid.composition.compose_prolongvid`) and train the projector only (LLaVA-OneVision recipe). Its
output is the first ProLongVid checkpoint of the pipeline.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/image_alignment.py \
    --config recipes/prolongvid-7b/image_alignment.yaml
```
"""

from __future__ import annotations

from modeling_prolongvid.composition import compose_prolongvid
from recipes.training.collator import VideoSFTCollator
from recipes.training.freezing import apply_freezing
from recipes.training.stage import FinishedStage, finish_stage, load_stage_rows, logger, setup_stage
from recipes.training.trainer import ProLongVidSFTTrainer


def train(script_args, training_args, model_args) -> None:
    """Compose a ProLongVid model from the LLM at `model_name_or_path` and train its projector (parsed arguments)."""
    # ------------------------------------------------------------------ setup
    sequence_parallel = setup_stage(script_args, training_args, model_args)
    if not script_args.vision_tower_name_or_path:
        raise ValueError("image_alignment needs vision_tower_name_or_path (the SigLIP checkpoint to join).")
    if sequence_parallel.sp_size > 1:
        raise ValueError("image_alignment trains on short image sequences: use sequence_parallel_size 1.")

    # ------------------------------------------------------------------ model
    model, processor = compose_prolongvid(
        model_args.model_name_or_path,
        script_args.vision_tower_name_or_path,
        pooled_grid_size=script_args.pooled_grid_size,
        image_grid_max=script_args.image_grid_max,
        num_frames=script_args.num_frames or 32,
        vision_select_layer=script_args.vision_select_layer,
    )
    trainable = apply_freezing(model, script_args.trainable_modules)
    logger.info("trainable parameters per module: %s", trainable)

    # ------------------------------------------------------------------ data
    collator = VideoSFTCollator(
        processor,
        num_frames=script_args.num_frames,
        dataset_dir=script_args.dataset_name,
        max_length=training_args.max_length,
        label_mask=script_args.label_mask,
        media_errors=script_args.media_errors,
        clip_cache=script_args.clip_cache,
    )
    rows = load_stage_rows(script_args, training_args, collator)

    # ------------------------------------------------------------------ trainer
    trainer = ProLongVidSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
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
            len(rows),
            extra_record={
                "vision_tower": script_args.vision_tower_name_or_path,
                "vision_select_layer": script_args.vision_select_layer,
                "skipped_media": trainer.skipped_media,
            },
        )
    )
