"""Stage hand-off: what a checkpoint is, which stage wrote it, and joining an LLM with a vision tower.

Every recipe writes `prolongvid_stage.json` next to its weights; the next stage reads it and refuses to start from
a checkpoint of the wrong kind:

```python
check_starting_checkpoint("runs/stage1", expected_kind="prolongvid", previous_stages=["stage1"], stage="stage2")
write_stage_record("runs/stage2", stage="stage2", started_from="runs/stage1")
```
"""

from __future__ import annotations

import json
from pathlib import Path

STAGE_RECORD = "prolongvid_stage.json"


class WrongCheckpointError(ValueError):
    """The starting checkpoint of a stage is not the kind (or the predecessor) that stage needs."""


def read_stage_record(path: str | Path) -> dict | None:
    """The stage record a recipe wrote into `path`, or None (e.g. a raw Hub checkpoint)."""
    record = Path(path) / STAGE_RECORD
    return json.loads(record.read_text()) if record.is_file() else None


def write_stage_record(output_dir: str | Path, stage: str, started_from: str, **details) -> Path:
    """Append `stage` to the history of the checkpoint it started from and write it into `output_dir`."""
    previous = read_stage_record(started_from) if Path(started_from).is_dir() else None
    history = (previous or {}).get("history", []) + [{"stage": stage, "started_from": str(started_from), **details}]
    path = Path(output_dir) / STAGE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": stage, "history": history}, indent=2) + "\n")
    return path


def checkpoint_kind(path: str | Path) -> str:
    """ "prolongvid" for a ProLongVid checkpoint, "llm" for a causal language model; raises for anything else."""
    from transformers import AutoConfig

    import modeling_prolongvid  # noqa: F401  (registers the prolongvid model type)

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise WrongCheckpointError(f"{path} is not a loadable transformers checkpoint: {error}") from error
    if config.model_type == "prolongvid":
        return "prolongvid"
    if any(name.endswith("ForCausalLM") for name in config.architectures or []):
        return "llm"
    raise WrongCheckpointError(
        f"{path} holds a {config.model_type!r} model ({config.architectures}); recipes start from a causal LLM or a "
        "ProLongVid checkpoint."
    )


def check_starting_checkpoint(
    path: str | Path, expected_kind: str, previous_stages: list[str] | None = None, stage: str = "this stage"
) -> dict | None:
    """Raise `WrongCheckpointError` unless `path` is of `expected_kind` and, when `previous_stages` is non-empty,
    was written by one of them (`any` accepts every predecessor). Returns the checkpoint's stage record (None if it has none)."""
    kind = checkpoint_kind(path)
    if kind != expected_kind:
        needs = "a ProLongVid checkpoint" if expected_kind == "prolongvid" else "a causal language model"
        raise WrongCheckpointError(
            f"{stage} must start from {needs}, but model_name_or_path={path} is a {kind} checkpoint. Pass the "
            f"output directory of {' or '.join(previous_stages or ['the previous stage'])}."
        )
    record = read_stage_record(path)
    if previous_stages and "any" not in previous_stages:
        written_by = record["stage"] if record else "no recipe (it has no " + STAGE_RECORD + ")"
        if record is None or record["stage"] not in previous_stages:
            raise WrongCheckpointError(
                f"{stage} must start from the output of {' or '.join(previous_stages)}, but {path} was written by "
                f"{written_by}. Run the stages in order (recipes/progressive.py) or set --previous_stages."
            )
    return record


def compose_prolongvid(
    llm_path: str | Path,
    vision_tower_path: str | Path,
    pooled_grid_size: int = 12,
    image_grid_max: int = 6,
    num_frames: int = 32,
):
    """Join a causal LLM and a SigLIP vision tower into a fresh ProLongVid model + processor (projector random).

    Returns `(model, processor)`; the tokenizer gains `<image>` / `<video>` if it lacks them.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, SiglipVisionModel

    from modeling_prolongvid import (
        ProLongVidConfig,
        ProLongVidForConditionalGeneration,
        ProLongVidImageProcessor,
        ProLongVidProcessor,
        ProLongVidVideoProcessor,
    )

    llm = AutoModelForCausalLM.from_pretrained(llm_path, dtype="float32")
    vision = SiglipVisionModel.from_pretrained(vision_tower_path, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(llm_path)
    missing = [token for token in ("<image>", "<video>") if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    side = vision.config.image_size
    pinpoints = [[side * h, side * w] for h in range(1, image_grid_max + 1) for w in range(1, image_grid_max + 1)]
    size = {"height": side, "width": side}
    processor = ProLongVidProcessor(
        image_processor=ProLongVidImageProcessor(size=size, crop_size=size, image_grid_pinpoints=pinpoints),
        tokenizer=tokenizer,
        video_processor=ProLongVidVideoProcessor(size=size),
        num_image_tokens=(side // vision.config.patch_size) ** 2,
        pooled_grid_size=pooled_grid_size,
    )
    vision_config = vision.config
    vision_config.vision_use_head = False
    config = ProLongVidConfig(
        vision_config=vision_config,
        text_config=llm.config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        pooled_grid_size=pooled_grid_size,
        num_frames=num_frames,
    )
    model = ProLongVidForConditionalGeneration(config)
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    model.model.vision_tower.load_state_dict(vision.state_dict(), strict=False)
    if len(tokenizer) > model.config.text_config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    return model, processor
