"""Arguments of every recipe: ProLongVid's own fields (`StageArguments`, importable without TRL or torch) on top of
TRL's dataclasses.

Every field can be set in the stage YAML (`--config recipes/prolongvid-7b/stage2.yaml`) and overridden on the
command line (`--num_frames 64`); the YAML's `stage` field chooses what trains (`STAGE_TRAINERS`). Parse all three
argument groups with `parse_recipe_arguments()`:

```python
>>> script_args, training_args, model_args = parse_recipe_arguments(
...     ["--config", "recipes/prolongvid-7b/stage2.yaml", "--num_frames", "64", "--use_cpu", "true", "--bf16", "false"]
... )
>>> script_args.stage, script_args.num_frames, script_args.previous_stages, training_args.learning_rate
('stage2', 64, ['stage1'], 1e-05)

```
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHECKPOINT_KINDS = ("llm", "prolongvid")
# Choices of the fields below; the first of each is upstream's behaviour and the default.
LABEL_MASKS = ("upstream", "assistant")
LOSS_NORMALIZATIONS = ("sample", "token")
MEDIA_ERROR_POLICIES = ("skip", "raise")
INVALID_ROW_POLICIES = ("drop", "error")
# What trains for each stage: a module of `recipes.training` with `train(script_args, training_args, model_args)`.
STAGE_TRAINERS = {
    "context_extension": "recipes.training.context_extension",
    "image_alignment": "recipes.training.image_alignment",
    "image_knowledge": "recipes.training.sft",
    "image_sft": "recipes.training.sft",
    "stage1": "recipes.training.sft",
    "stage2": "recipes.training.sft",
    "stage3": "recipes.training.sft",
    "mixed": "recipes.training.sft",
}
STAGES = tuple(STAGE_TRAINERS)


@dataclass
class StageArguments:
    """ProLongVid's fields of one training stage: data, stage hand-off, freezing and parallelism. The recipes parse
    them together with TRL's `ScriptArguments` (`ProLongVidScriptArguments`), `SFTConfig` and `ModelConfig`."""

    stage: str = field(
        default="stage1", metadata={"help": f"What this run trains, recorded in its output. One of {STAGES}."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Dataset directory (`python -m dataset_builder build` output, or .txt files)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Subset of `dataset_name` to train on."})
    dataset_configs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Several subsets trained together (the mixed baseline, or a mix of datasets); overrides "
            "`dataset_config` when given. `CONFIG` is a subset of `dataset_name`; `DIR:CONFIG` one of another built "
            "or imported dataset folder (its media paths resolved against DIR; its frames decoded, not cached)."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N rows (smoke runs)."})
    num_frames: int | None = field(
        default=None, metadata={"help": "Frames sampled uniformly from every training video (video stages)."}
    )
    subset_num_frames: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Frames per video by the row's subset as subset=N (mixed baseline: stage1=32 stage2=128 "
            "stage3=192, paper App. B); rows of other subsets use num_frames; `none`: num_frames for all. At a "
            "per-device batch above 1 every batch holds rows of one frame count (recipes/training/sampling.py)."
        },
    )
    frame_size: int | None = field(
        default=None, metadata={"help": "Decode frames at this square size (pixels); default: the vision input size."}
    )
    frame_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Frame cache written by `dataset_builder annotate` (read before decoding any video); default: "
            "`<dataset_name>/frame_cache` when it exists; `none` always decodes."
        },
    )
    clip_cache: int = field(
        default=0,
        metadata={
            "help": "Decoded clips kept in memory per process (least recently used out): rows sharing a video, and "
            "epochs after the first, decode it once. 0: decode every time."
        },
    )
    label_mask: str = field(
        default="upstream",
        metadata={
            "help": "Tokens trained on: upstream (preprocess_qwen: whole assistant turns with their header, plus "
            "every <|im_start|>, <|im_end|> and newline token) or assistant (assistant text and its <|im_end|>)."
        },
    )
    loss_normalization: str = field(
        default="sample",
        metadata={
            "help": "sample (upstream: every sample's token mean weighs the same, at any per-device batch) or token "
            "(TRL: token sum of the global batch over its token count; long rows weigh more)."
        },
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Samples per optimizer step; gradient_accumulation_steps is derived from it as global / "
            "(data-parallel size x per_device_train_batch_size). None: gradient_accumulation_steps as given."
        },
    )
    invalid_rows: str = field(
        default="drop",
        metadata={
            "help": "Rows that cannot train (no answer, missing media, longer than max_length), found when the "
            "dataset is loaded: drop (reported with ids and reasons in the log and <output_dir>/dropped_rows.jsonl) "
            "or error."
        },
    )
    media_errors: str = field(
        default="skip",
        metadata={
            "help": "A row whose video or image cannot be read while training: skip (logged and counted, never "
            "replaced by another row) or raise."
        },
    )
    trainable_modules: list[str] = field(
        default_factory=lambda: ["projector", "language_model", "image_newline"],
        metadata={
            "help": "Modules that train: any of all, vision_tower, projector, image_newline, language_model "
            "(language_model includes lm_head). Everything else is frozen."
        },
    )
    module_learning_rates: list[str] = field(
        default_factory=list,
        metadata={"help": "Per-module learning rates as module=lr, e.g. vision_tower=2e-6; others use learning_rate."},
    )
    expected_checkpoint: str = field(
        default="prolongvid",
        metadata={"help": f"Kind of model_name_or_path this stage must start from: one of {CHECKPOINT_KINDS}."},
    )
    previous_stages: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Stages whose output this stage may start from (empty or `any`: any checkpoint of the right kind)."
        },
    )
    sequence_parallel_size: int = field(
        default=1,
        metadata={"help": "Ranks sharing one sequence through zigzag ring attention; data-parallel size = world / N."},
    )
    vision_tower_name_or_path: str | None = field(
        default=None, metadata={"help": "image_alignment: the SigLIP vision tower joined to the LLM."}
    )
    vision_select_layer: int = field(
        default=-2,
        metadata={
            "help": "image_alignment: the tower's hidden state the features come from (upstream: -2, the layer "
            "before last; later layers and the head are dropped); -1: the last layer."
        },
    )
    image_grid_max: int = field(
        default=6, metadata={"help": "image_alignment: anyres pinpoints up to image_grid_max x image_grid_max tiles."}
    )
    pooled_grid_size: int = field(
        default=12, metadata={"help": "image_alignment: pooled video grid per frame of the composed model."}
    )
    rope_theta: float | None = field(
        default=None, metadata={"help": "context_extension: RoPE base written into the trained model's config."}
    )
    context_length: int = field(
        default=262144, metadata={"help": "context_extension: tokens per packed training sequence."}
    )

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage={self.stage!r} is not a recipe stage; use one of {STAGES}.")
        if self.expected_checkpoint not in CHECKPOINT_KINDS:
            raise ValueError(f"expected_checkpoint={self.expected_checkpoint!r}; use one of {CHECKPOINT_KINDS}.")
        if self.sequence_parallel_size < 1:
            raise ValueError(f"sequence_parallel_size must be >= 1, got {self.sequence_parallel_size}.")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}.")
        for name, choices in (
            ("label_mask", LABEL_MASKS),
            ("loss_normalization", LOSS_NORMALIZATIONS),
            ("media_errors", MEDIA_ERROR_POLICIES),
            ("invalid_rows", INVALID_ROW_POLICIES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r}; use one of {choices}.")
        if self.clip_cache < 0:
            raise ValueError(f"clip_cache must be >= 0 clips, got {self.clip_cache}.")
        if self.global_batch_size is not None and self.global_batch_size < 1:
            raise ValueError(f"global_batch_size must be >= 1, got {self.global_batch_size}.")
        self.learning_rate_overrides()  # validate early
        self.frames_by_subset()

    def learning_rate_overrides(self) -> dict[str, float]:
        """`module_learning_rates` as {module: lr}.

        >>> StageArguments(module_learning_rates=["vision_tower=2e-6"]).learning_rate_overrides()
        {'vision_tower': 2e-06}
        """
        overrides = {}
        for entry in self.module_learning_rates:
            module, sep, value = entry.partition("=")
            try:
                overrides[module.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise ValueError(f"module_learning_rates entry {entry!r} is not module=lr (e.g. vision_tower=2e-6).")
        return overrides

    def frames_by_subset(self) -> dict[str, int]:
        """`subset_num_frames` as {subset: frames}.

        >>> StageArguments(subset_num_frames=["stage1=32", "stage2=128"]).frames_by_subset()
        {'stage1': 32, 'stage2': 128}
        >>> StageArguments(subset_num_frames=["none"]).frames_by_subset()
        {}
        """
        if [entry.lower() for entry in self.subset_num_frames] == ["none"]:
            return {}
        frames = {}
        for entry in self.subset_num_frames:
            subset, _, value = entry.partition("=")
            if not value.strip().isdigit() or int(value) < 1:
                raise ValueError(f"subset_num_frames entry {entry!r} is not subset=N with N >= 1 (e.g. stage1=32).")
            frames[subset.strip()] = int(value)
        return frames

    def subsets(self) -> list[str]:
        """Dataset subsets this stage trains on.

        >>> StageArguments(dataset_config="stage1").subsets(), StageArguments(dataset_configs=["a", "b"]).subsets()
        (['stage1'], ['a', 'b'])
        """
        return list(self.dataset_configs) or ([self.dataset_config] if self.dataset_config else [])


def parse_recipe_arguments(args: list[str] | None = None):
    """Parse `--config stage.yaml` plus command-line overrides into `(script_args, training_args, model_args)`:
    `ProLongVidScriptArguments`, TRL's `SFTConfig` and `ModelConfig` (imported here: they load torch)."""
    from trl import ModelConfig, SFTConfig, TrlParser

    from recipes.training.trl_arguments import ProLongVidScriptArguments

    parser = TrlParser((ProLongVidScriptArguments, SFTConfig, ModelConfig))
    return parser.parse_args_and_config(args=args)
