"""Run the whole ProLongVid training pipeline, each stage starting from the previous stage's output:
context extension -> image alignment -> image knowledge -> single-image SFT -> video stages 1, 2, 3.

Every stage is launched exactly as its YAML's `# Launch:` line says (so the strategy lives with the recipe), with
`--model_name_or_path <previous output> --output_dir <output_root>/<stage>` appended.

```bash
python recipes/progressive.py --recipe_dir recipes/prolongvid-7b --output_root runs/prolongvid-7b
python recipes/progressive.py --tiny /tmp/prolongvid-tiny      # the whole chain on a tiny model, on CPU
python recipes/progressive.py --dry_run                         # print the commands only
```
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from recipes.training.cli import HelpFormatter

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ("context_extension", "image_alignment", "image_knowledge", "image_sft", "stage1", "stage2", "stage3")
# Small settings for the --tiny chain on CPU: a few optimizer steps per stage on the tiny model.
TINY_COMMON = (
    "--use_cpu true --bf16 false --dtype float32 --max_steps 2 --save_strategy no --dataloader_num_workers 0 "
    "--warmup_steps 0 --logging_steps 1 --report_to none --activation_checkpointing false --global_batch_size 4"
)
TINY_FRAMES = {"stage1": 4, "stage2": 6, "stage3": 8}


def launch_line(recipe: Path) -> list[str]:
    """The `accelerate launch ...` command of the `# Launch:` comment of a stage YAML, as argv.

    >>> launch_line(REPO_ROOT / "recipes" / "prolongvid-7b" / "stage1.yaml")[:4]
    ['accelerate', 'launch', '--config_file', 'recipes/accelerate_configs/zero1.yaml']
    """
    for line in recipe.read_text().splitlines():
        if line.startswith("# Launch:"):
            return shlex.split(line.removeprefix("# Launch:"))
    raise ValueError(f"{recipe} has no '# Launch: accelerate launch ...' comment; add one naming its strategy.")


def tiny_overrides(stage: str, inputs: dict[str, Path]) -> list[str]:
    """Per-stage arguments that point a stage at the tiny inputs."""
    args = shlex.split(TINY_COMMON)
    if stage == "context_extension":
        return args + ["--model_name_or_path", str(inputs["llm"]), "--dataset_name", str(inputs["long_text"]),
                       "--context_length", "64", "--sequence_parallel_size", "2"]  # fmt: skip
    args += ["--dataset_name", str(inputs["data"])]
    if stage == "image_alignment":
        args += ["--vision_tower_name_or_path", str(inputs["vision"]), "--image_grid_max", "2"]
        args += ["--pooled_grid_size", "2"]
    if stage in TINY_FRAMES:
        args += ["--num_frames", str(TINY_FRAMES[stage])]
    return args


def stage_commands(
    recipe_dir: Path, output_root: Path, stages: list[str], num_processes: int | None, extra: list[str],
    inputs: dict[str, Path] | None = None,
) -> list[list[str]]:  # fmt: skip
    """One argv per stage; stage k+1 starts from stage k's output directory."""
    commands, previous = [], None
    for index, stage in enumerate(stages):
        argv = launch_line(recipe_dir / f"{stage}.yaml")
        config_index = argv.index("--config")
        argv[config_index + 1] = str(recipe_dir / f"{stage}.yaml")
        if num_processes is not None:
            argv[2:2] = ["--num_processes", str(num_processes), "--main_process_port", str(29700 + index)]
        if inputs is not None:
            argv += tiny_overrides(stage, inputs)
        if previous is not None:
            argv += ["--model_name_or_path", str(previous)]
        previous = output_root / stage
        commands.append(argv + ["--output_dir", str(previous)] + extra)
    return commands


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument(
        "--recipe_dir", type=Path, default=REPO_ROOT / "recipes" / "prolongvid-7b", help="Stage YAMLs, one per stage."
    )
    parser.add_argument(
        "--output_root",
        type=Path,
        default=None,
        help="Stage k writes <output_root>/<stage k>; None: runs/<recipe dir name>.",
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        default=list(PIPELINE),
        choices=PIPELINE,
        metavar="STAGE",
        help="Stages to run, in order.",
    )
    parser.add_argument("--num_processes", type=int, default=None, help="Override the accelerate configs' count.")
    parser.add_argument("--tiny", type=Path, default=None, help="Build tiny inputs here and run the chain on CPU.")
    parser.add_argument("--dry_run", action="store_true", help="Print the commands without running them.")
    options, extra = parser.parse_known_args(args)

    inputs = None
    if options.tiny is not None:
        from recipes.training.tiny_inputs import build_tiny_inputs, tiny_input_paths

        workdir = options.tiny / "inputs"
        inputs = tiny_input_paths(workdir) if options.dry_run else build_tiny_inputs(workdir)
        options.num_processes = options.num_processes or 2
    output_root = options.output_root or (
        options.tiny / "runs" if options.tiny else Path("runs") / options.recipe_dir.name
    )
    commands = stage_commands(options.recipe_dir, output_root, options.stages, options.num_processes, extra, inputs)
    for command in commands:
        print(shlex.join(command), flush=True)
        if not options.dry_run:
            subprocess.run(command, check=True, cwd=REPO_ROOT)


if __name__ == "__main__":
    main()
