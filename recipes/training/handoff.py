"""Stage hand-off: what a checkpoint is and which stage wrote it.

Every recipe writes `prolongvid_stage.json` next to its weights; the next stage reads it and refuses to start from
a checkpoint of the wrong kind or from the wrong predecessor:

```python
>>> import tempfile
>>> from pathlib import Path
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_tokenizer
>>> stage1 = Path(tempfile.mkdtemp()) / "stage1"
>>> build_tiny_config(build_tiny_tokenizer()).save_pretrained(stage1)  # a checkpoint's config.json is enough here
>>> _ = write_stage_record(stage1, stage="stage1", started_from="runs/image_sft", num_frames=32)
>>> check_starting_checkpoint(stage1, expected_kind="prolongvid", previous_stages=["stage1"], stage="stage2")["stage"]
'stage1'
>>> check_starting_checkpoint(stage1, expected_kind="llm", stage="context_extension")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
recipes.training.handoff.WrongCheckpointError: context_extension must start from a causal language model, ...

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


def portable_stage_record(record: dict, run_dir: str | Path) -> dict:
    """``record`` (a checkpoint's stage record) with every ``started_from`` inside ``run_dir`` relative to it, so the
    shipped record names the run's layout, not the machine it ran on; other paths (a Hub id) stay as they are.

    Example:
        >>> record = {"stage": "stage2", "history": [{"stage": "stage1", "started_from": "/runs/w/frames_stage"},
        ...           {"stage": "stage2", "started_from": "/runs/w/stage1"}, {"stage": "x", "started_from": "org/m"}]}
        >>> [step["started_from"] for step in portable_stage_record(record, "/runs/w")["history"]]
        ['frames_stage', 'stage1', 'org/m']
    """
    root = Path(run_dir).absolute()

    def portable(path: str) -> str:
        candidate = Path(path)
        if candidate.is_absolute() and candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
        return path

    history = [{**step, "started_from": portable(step["started_from"])} for step in record.get("history", [])]
    return {**record, "history": history}


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
