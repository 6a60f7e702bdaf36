"""The command line of every recipe script: `--help` at once, then the trainer of the YAML's `stage`.

Every entry script (`recipes/stage2.py`, ...) is `main(description=__doc__)`; the stage YAML names the stage, its
starting checkpoint's kind and predecessors, and its hyper-parameters. `--help` lists `--config` and ProLongVid's own
fields with their defaults (the YAML's values when `--config` is given) without loading TRL or torch;
`--help_all` prints TRL's full parser as well.

```python
>>> text = recipe_help("stage2.py", config_path="recipes/prolongvid-7b/stage2.yaml")
>>> text.index("--config YAML") < text.index("--stage STAGE") < text.index("--num_frames N")
True
>>> "(default: 128)" in text[text.index("  --num_frames N") : text.index("  --frame_size N")]  # the YAML's value
True

```
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from recipes.training.arguments import STAGE_TRAINERS, StageArguments, parse_recipe_arguments

HELP_FLAGS = ("-h", "--help")
HELP_ALL_FLAG = "--help_all"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every option, the description's line breaks kept."""


def _option(name: str, annotation) -> tuple[str, str | None]:
    """`(metavar, nargs)` of a field from its type hint (`int | None`, `list[str]`, ...)."""
    is_list = typing.get_origin(annotation) is list
    base = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)][0]
    metavar = "STAGE" if name == "stage" else {str: "TEXT", int: "N", float: "X"}[base]
    return metavar, "+" if is_list else None


def recipe_help(prog: str, description: str | None = None, config_path: str | None = None) -> str:
    """The text of `--help`: `--config` first, then ProLongVid's fields and the TRL fields the YAML sets."""
    config = {}
    if config_path is not None:
        import yaml

        config = yaml.safe_load(Path(config_path).read_text()) or {}
    parser = argparse.ArgumentParser(
        prog=prog,
        usage="%(prog)s --config YAML [--FIELD VALUE ...] [-h] [--help_all]",
        description=description,
        formatter_class=HelpFormatter,
        add_help=False,
        epilog="Every other field of TRL's SFTConfig (output_dir, learning_rate, num_train_epochs, "
        "per_device_train_batch_size, bf16, ...) and ModelConfig (model_name_or_path, dtype, attn_implementation, "
        f"use_peft, lora_r, ...) is accepted too, in the YAML or as --name value; {HELP_ALL_FLAG} lists them all "
        "(it loads TRL and torch: ~10-20 s).",
    )
    parser.add_argument(
        "--config", metavar="YAML", default=config_path, help="Stage YAML (recipes/prolongvid-7b/<stage>.yaml)."
    )
    parser.add_argument("-h", "--help", action="store_true", default=argparse.SUPPRESS, help="Show this message.")
    parser.add_argument(HELP_ALL_FLAG, action="store_true", default=argparse.SUPPRESS, help="Also list TRL's fields.")
    own = parser.add_argument_group("ProLongVid stage fields")
    hints = typing.get_type_hints(StageArguments)
    for item in fields(StageArguments):
        default = item.default if item.default is not MISSING else item.default_factory()
        metavar, nargs = _option(item.name, hints[item.name])
        own.add_argument(
            f"--{item.name}",
            metavar=metavar,
            nargs=nargs,
            default=config.get(item.name, default),
            help=item.metadata["help"],
        )
    trl_fields = {key: value for key, value in config.items() if key not in {f.name for f in fields(StageArguments)}}
    if trl_fields:
        group = parser.add_argument_group(f"TRL fields set by {config_path}")
        for key, value in trl_fields.items():
            group.add_argument(f"--{key}", metavar="VALUE", default=value, help="%(default)s")
    return parser.format_help()


def main(args: list[str] | None = None, description: str | None = None) -> None:
    """Answer `--help` / `--help_all`, or parse the arguments and train the YAML's stage.

    Args:
        args: command-line arguments (default: `sys.argv[1:]`), e.g. `["--config", "recipes/prolongvid-7b/stage1.yaml"]`.
        description: the entry script's docstring, shown by `--help`.
    """
    args = sys.argv[1:] if args is None else [str(arg) for arg in args]
    if HELP_ALL_FLAG in args:
        parse_recipe_arguments(["--help"])  # TRL's parser prints every field and exits
    if any(flag in args for flag in HELP_FLAGS):
        config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
        print(recipe_help(Path(sys.argv[0]).name, description, config_path))
        return
    script_args, training_args, model_args = parse_recipe_arguments(args)
    trainer = importlib.import_module(STAGE_TRAINERS[script_args.stage])
    trainer.train(script_args, training_args, model_args)
