"""The model card every recipe writes at the end of its stage: stage, frames, data, modules, and the command.

```python
>>> import tempfile
>>> card = write_model_card(tempfile.mkdtemp(), stage="stage2", base_model="runs/stage1", num_frames=128,
...                         data=["stage2"], dataset_dir="data/prolongvid", num_rows=1000,
...                         trainable={"projector": 10}, hyperparameters={"learning_rate": 1e-5})
>>> print(card.read_text().split("# ProLongVid")[1].split("## Trainable")[0].strip())
— stage2
<BLANKLINE>
Trained from `runs/stage1` by the `stage2` recipe of the ProLongVid kit.
<BLANKLINE>
- **Stage:** stage2
- **Frames per video:** 128
- **Data:** stage2 from `data/prolongvid` (1000 rows)

```
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def launch_command() -> str:
    """The command that started this process, as `accelerate launch <script> <args>` when accelerate started it."""
    argv = " ".join(shlex.quote(arg) for arg in sys.argv)
    world = os.environ.get("WORLD_SIZE")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        return f"accelerate launch --use_deepspeed --num_processes {world or 1} {argv}"
    if world:
        return f"accelerate launch --num_processes {world} {argv}"
    return f"python {argv}"


def write_model_card(
    output_dir: str | Path,
    stage: str,
    base_model: str,
    num_frames: int | None,
    data: list[str],
    dataset_dir: str | None,
    num_rows: int,
    trainable: dict[str, int],
    hyperparameters: dict,
    command: str | None = None,
) -> Path:
    """Write `README.md` (YAML front matter + sections) into `output_dir` and return its path."""
    command = command or launch_command()
    hyper = "\n".join(f"| {key} | {value} |" for key, value in hyperparameters.items())
    modules = "\n".join(f"| {name} | {count:,} |" for name, count in trainable.items())
    card = f"""---
library_name: transformers
base_model: {base_model}
tags:
- prolongvid
- {stage}
---

# ProLongVid — {stage}

Trained from `{base_model}` by the `{stage}` recipe of the ProLongVid kit.

- **Stage:** {stage}
- **Frames per video:** {num_frames if num_frames is not None else "n/a (no video)"}
- **Data:** {", ".join(data) or "n/a"} from `{dataset_dir}` ({num_rows} rows)

## Trainable parameters

| module | parameters |
|---|---|
{modules}

## Hyper-parameters

| name | value |
|---|---|
{hyper}

## Command

```bash
{command}
```
"""
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card)
    return path
