"""`ProLongVidScriptArguments`: TRL's `ScriptArguments` plus the recipe's own `StageArguments` (kept apart so that
`--help` and the stage table load without TRL)."""

from __future__ import annotations

from dataclasses import dataclass

from trl import ScriptArguments

from recipes.training.arguments import StageArguments


@dataclass
class ProLongVidScriptArguments(StageArguments, ScriptArguments):
    """TRL's script arguments (`dataset_name` = dataset directory, `dataset_config` = subset name) with the data,
    stage hand-off, freezing and parallelism fields of `StageArguments`."""
