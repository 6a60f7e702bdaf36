"""Image stage (a), image-text alignment: join the context-extended LLM with the SigLIP vision tower and train the
projector only (LLaVA-OneVision recipe). Its output is the first ProLongVid checkpoint of the pipeline.

```bash
accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/image_alignment.py \
    --config recipes/prolongvid-7b/image_alignment.yaml
```
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # started as a file (accelerate launch recipes/image_alignment.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recipes.arguments import parse_recipe_arguments  # noqa: E402
from recipes.collator import VideoSFTCollator  # noqa: E402
from recipes.data import load_training_rows  # noqa: E402
from recipes.freezing import apply_freezing  # noqa: E402
from recipes.handoff import check_starting_checkpoint, compose_prolongvid  # noqa: E402
from recipes.stage import finish_stage, logger, setup_stage  # noqa: E402
from recipes.trainer import ProLongVidSFTTrainer  # noqa: E402


def main(args: list[str] | None = None) -> None:
    # ------------------------------------------------------------------ setup
    script_args, training_args, model_args = parse_recipe_arguments(args)
    sequence_parallel = setup_stage(script_args, training_args, "image_alignment")
    check_starting_checkpoint(model_args.model_name_or_path, "llm", script_args.previous_stages, "image_alignment")
    if not script_args.vision_tower_name_or_path:
        raise ValueError("image_alignment needs vision_tower_name_or_path (the SigLIP checkpoint to join).")
    if sequence_parallel.sp_size > 1:
        raise ValueError("image_alignment trains on short image sequences: use sequence_parallel_size 1.")

    # ------------------------------------------------------------------ data
    rows = load_training_rows(script_args.dataset_name, script_args.subsets(), script_args.max_train_samples)
    logger.info("%d training rows from %s %s", len(rows), script_args.dataset_name, script_args.subsets())

    # ------------------------------------------------------------------ model
    model, processor = compose_prolongvid(
        model_args.model_name_or_path,
        script_args.vision_tower_name_or_path,
        pooled_grid_size=script_args.pooled_grid_size,
        image_grid_max=script_args.image_grid_max,
        num_frames=script_args.num_frames or 32,
    )
    trainable = apply_freezing(model, script_args.trainable_modules)
    logger.info("trainable parameters per module: %s", trainable)
    collator = VideoSFTCollator(
        processor,
        num_frames=script_args.num_frames,
        dataset_dir=script_args.dataset_name,
        max_length=training_args.max_length,
    )

    # ------------------------------------------------------------------ trainer
    trainer = ProLongVidSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=rows,
        data_collator=collator,
        processing_class=processor,
        module_learning_rates=script_args.learning_rate_overrides(),
    )

    # ------------------------------------------------------------------ train
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    # ------------------------------------------------------------------ save + card
    finish_stage(
        trainer,
        processor,
        script_args,
        training_args,
        model_args,
        trainable,
        len(rows),
        num_frames=None,
        extra_record={"vision_tower": script_args.vision_tower_name_or_path},
    )


if __name__ == "__main__":
    main()
