"""Recipes without launching training: YAMLs and launch strategies, arguments, collator, freezing, hand-off, data,
model card, progressive runner commands and the stage-schedule benchmark."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import modeling_prolongvid  # noqa: F401
from recipes.progressive import PIPELINE, stage_commands
from recipes.training.arguments import STAGE_TRAINERS, parse_recipe_arguments
from recipes.training.collator import VideoSFTCollator
from recipes.training.data import load_training_rows, pack_text
from recipes.training.freezing import apply_freezing, parameter_groups
from recipes.training.handoff import (
    WrongCheckpointError,
    check_starting_checkpoint,
    checkpoint_kind,
    write_stage_record,
)
from recipes.training.model_card import write_model_card
from recipes.training.tiny_inputs import ANSWERS, build_tiny_inputs

REPO = Path(__file__).resolve().parents[2]
RECIPE_DIR = REPO / "recipes" / "prolongvid-7b"
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))
CPU = ["--use_cpu", "true", "--bf16", "false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_inputs(tmp_path_factory.mktemp("recipes-tiny"))


@pytest.fixture(scope="module")
def tiny_model_and_processor(tiny):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return (
        AutoModelForImageTextToText.from_pretrained(tiny["prolongvid"]),
        AutoProcessor.from_pretrained(tiny["prolongvid"]),
    )


# ----------------------------------------------------------------------------- YAMLs and launch strategies
def test_every_stage_has_a_recipe_and_a_script():
    stages = {path.stem for path in RECIPES}
    assert stages == set(PIPELINE) | {"mixed"}
    for stage in stages:
        assert (REPO / "recipes" / f"{stage}.py").is_file()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_and_names_existing_files(recipe):
    text = recipe.read_text()
    assert text.startswith("# Sized for:"), "the first comment names the hardware the recipe was sized for"
    named = set(re.findall(r"recipes/[\w\-/.]+\.(?:py|yaml|json)", text))
    assert named, "the launch line names the script and strategy"
    for path in named:
        assert (REPO / path).is_file(), f"{recipe.name} names {path}, which does not exist"
    launch = next(line for line in text.splitlines() if line.startswith("# Launch:"))
    assert f"recipes/{recipe.stem}.py" in launch and f"--config recipes/prolongvid-7b/{recipe.name}" in launch
    script_doc = (REPO / "recipes" / f"{recipe.stem}.py").read_text()
    strategy = re.search(r"recipes/accelerate_configs/\w+\.yaml", launch).group(0)
    assert strategy in script_doc, "the script's docstring and the YAML launch the same strategy"

    script_args, training_args, model_args = parse_recipe_arguments(["--config", str(recipe), *CPU])
    raw = yaml.safe_load(text)
    assert script_args.stage == recipe.stem
    assert training_args.learning_rate == raw["learning_rate"]
    assert model_args.model_name_or_path == raw["model_name_or_path"]
    if recipe.stem.startswith("stage"):
        assert script_args.num_frames == {"stage1": 32, "stage2": 128, "stage3": 192}[recipe.stem]
        assert "vision_tower" not in script_args.trainable_modules
        assert training_args.max_length >= script_args.num_frames * 156, "max_length must hold every frame"


def test_command_line_overrides_yaml():
    args = ["--config", str(RECIPE_DIR / "stage2.yaml"), *CPU, "--num_frames", "64", "--learning_rate", "3e-5"]
    script_args, training_args, _ = parse_recipe_arguments(args)
    assert (script_args.num_frames, training_args.learning_rate) == (64, 3e-5)
    assert training_args.lr_scheduler_type == "cosine"  # untouched YAML field


def test_bad_arguments_are_refused():
    config = ["--config", str(RECIPE_DIR / "stage1.yaml"), *CPU]
    with pytest.raises(ValueError, match="module=lr"):
        parse_recipe_arguments([*config, "--module_learning_rates", "vision_tower:2e-6"])
    with pytest.raises(ValueError, match="stage="):
        parse_recipe_arguments([*config, "--stage", "stage9"])


@pytest.mark.parametrize("strategy", ["ddp", "zero1", "zero2", "zero3", "zero3_offload"])
def test_accelerate_configs_point_to_valid_deepspeed_json(strategy):
    config = yaml.safe_load((REPO / "recipes" / "accelerate_configs" / f"{strategy}.yaml").read_text())
    if strategy == "ddp":
        assert config["distributed_type"] == "MULTI_GPU"
        return
    assert config["distributed_type"] == "DEEPSPEED"
    ds = json.loads((REPO / config["deepspeed_config"]["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == int(strategy[4])
    assert ("offload_param" in ds["zero_optimization"]) == strategy.endswith("offload")
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["bf16"]["enabled"] == "auto"


def test_scripts_stay_small():
    for path in (REPO / "recipes").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
        assert "sys.path" not in path.read_text(), f"{path.name}: the kit is pip-installed, no sys.path edits"
    for module in set(STAGE_TRAINERS.values()):
        source = (REPO / (module.replace(".", "/") + ".py")).read_text()
        body = source[source.index("def train(") :]
        assert len(body.splitlines()) < 200 and "# ----" in body


ENTRY_SCRIPT_CODE = (
    'from recipes.training.cli import main\n\nif __name__ == "__main__":\n    main(description=__doc__)'
)


def test_entry_scripts_are_the_same_one_line():
    """The stage lives in the YAML only: every entry script runs whatever stage its --config names."""
    for stage in STAGE_TRAINERS:
        assert (REPO / "recipes" / f"{stage}.py").read_text().split('"""')[-1].strip() == ENTRY_SCRIPT_CODE, stage


def test_help_answers_without_loading_trl_or_torch():
    """`--help` lists --config first, then ProLongVid's fields with the YAML's values as defaults; TRL's full parser
    (which loads torch, 10-20 s) only behind --help_all."""
    probe = (
        "import runpy, sys; sys.argv = ['recipes/stage2.py', '--config', 'recipes/prolongvid-7b/stage2.yaml', "
        "'--help']; runpy.run_path('recipes/stage2.py', run_name='__main__'); "
        "print('LOADED', sorted({'torch', 'trl', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: stage2.py --config YAML"), text[:200]
    assert "Progressive video instruction tuning, stage 2" in text  # the entry script's docstring
    options = re.findall(r"^  (--\w+)", text, flags=re.M)
    assert options[0] == "--config" and {"--num_frames", "--trainable_modules", "--learning_rate"} <= set(options)
    num_frames = text[text.index("  --num_frames") :].split("\n  --")[0]
    assert "(default: 128)" in num_frames, num_frames
    learning_rate = text[text.index("  --learning_rate VALUE") :].split("\n  --")[0]
    assert learning_rate.split()[-1] == "1e-05", "the TRL fields the YAML sets, with their values"
    assert "--help_all" in text and text.strip().endswith("LOADED []")


# ----------------------------------------------------------------------------- collator
def test_collator_batches_rows_with_their_labels(tiny, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    rows = load_training_rows(tiny["data"], ["stage1"])
    for label_mask in ("assistant", "upstream"):
        collator = VideoSFTCollator(processor, num_frames=5, dataset_dir=tiny["data"], label_mask=label_mask)
        batch = collator([rows[0], rows[1]])
        assert batch["pixel_values_videos"].shape[:2] == (2, 5)
        assert int((batch["input_ids"] == processor.video_token_id).sum()) == 2 * model.config.num_video_tokens(5)
        assert batch["attention_mask"][:, 0].all() and not batch["attention_mask"].all(), "padding on the right"
        for index in range(2):
            labels = batch["labels"][index]
            assert (labels[~batch["attention_mask"][index].bool()] == -100).all(), "padding is never trained"
            text = processor.tokenizer.decode(labels[labels != -100])
            answer = ANSWERS[index] + "<|im_end|>"
            assert text == answer if label_mask == "assistant" else text.endswith(f"assistant\n{answer}\n")
        assert not batch.pop("skipped_media").any()
        assert torch.isfinite(model(**batch).loss)


def test_collator_refuses_rows_without_assistant_tokens(tiny, tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    row = dict(load_training_rows(tiny["data"], ["stage1"])[0])
    row["messages"] = row["messages"][:1]  # user turn only: upstream's mask would still train its markers
    for label_mask in ("upstream", "assistant"):
        with pytest.raises(ValueError, match="no assistant text"):
            VideoSFTCollator(processor, num_frames=4, dataset_dir=tiny["data"], label_mask=label_mask)([row])


def test_collator_never_cuts(tiny, tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    rows = load_training_rows(tiny["data"], ["stage1"])
    with pytest.raises(ValueError, match="more than max_length=32; nothing is cut"):
        VideoSFTCollator(processor, num_frames=8, dataset_dir=tiny["data"], max_length=32)([rows[0]])


def test_collator_handles_image_rows(tiny, tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    rows = load_training_rows(tiny["data"], ["image_sft"])
    batch = VideoSFTCollator(processor, num_frames=None, dataset_dir=tiny["data"])([rows[0], rows[2]])
    assert "pixel_values" in batch and "image_sizes" in batch and "pixel_values_videos" not in batch
    assert not batch.pop("skipped_media").any()
    assert torch.isfinite(model(**batch).loss)


# ----------------------------------------------------------------------------- freezing
def test_freezing_and_module_learning_rates(tiny_model_and_processor):
    model, _ = tiny_model_and_processor
    counts = apply_freezing(model, ["projector", "language_model"])
    assert set(counts) == {"projector", "language_model"}
    assert not any(p.requires_grad for n, p in model.named_parameters() if "vision_tower" in n)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lm_head" in n)
    groups = parameter_groups(model, 1e-5, 0.1, {"lm_head.weight"}, {"projector": 1e-3})
    by_lr = {(g["lr"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    assert by_lr[(1e-3, 0.0)] == counts["projector"]
    assert sum(by_lr.values()) == sum(counts.values())
    with pytest.raises(ValueError, match="Unknown module"):
        apply_freezing(model, ["vision"])
    apply_freezing(model, ["all"])


# ----------------------------------------------------------------------------- hand-off
def test_wrong_kind_of_checkpoint_is_refused(tiny, tmp_path):
    assert checkpoint_kind(tiny["llm"]) == "llm" and checkpoint_kind(tiny["prolongvid"]) == "prolongvid"
    with pytest.raises(WrongCheckpointError, match="must start from a ProLongVid checkpoint"):
        check_starting_checkpoint(tiny["llm"], "prolongvid", ["stage1"], "stage2")
    with pytest.raises(WrongCheckpointError, match="causal language model"):
        check_starting_checkpoint(tiny["prolongvid"], "llm", [], "context_extension")
    with pytest.raises(WrongCheckpointError, match="output of stage1"):
        check_starting_checkpoint(tiny["prolongvid"], "prolongvid", ["stage1"], "stage2")
    assert check_starting_checkpoint(tiny["prolongvid"], "prolongvid", ["any"], "stage2") is None
    with pytest.raises(WrongCheckpointError, match="not a loadable"):
        checkpoint_kind(tmp_path)


def test_stage_record_accumulates_history(tmp_path):
    write_stage_record(tmp_path / "a", stage="stage1", started_from="base", num_frames=32)
    record_path = write_stage_record(tmp_path / "b", stage="stage2", started_from=str(tmp_path / "a"))
    record = json.loads(record_path.read_text())
    assert record["stage"] == "stage2" and [h["stage"] for h in record["history"]] == ["stage1", "stage2"]


# ----------------------------------------------------------------------------- data, card, runner, benchmark
def test_pack_text_cuts_equal_blocks(tiny, tiny_model_and_processor):
    _, processor = tiny_model_and_processor
    blocks = pack_text(processor.tokenizer, [tiny["long_text"]], context_length=50)
    assert len(blocks) > 2 and {len(ids) for ids in blocks["input_ids"]} == {50}
    with pytest.raises(ValueError, match="fewer than one block"):
        pack_text(processor.tokenizer, [tiny["long_text"]], context_length=10**7)


def test_missing_subset_is_reported(tiny):
    with pytest.raises(ValueError, match="stage9"):
        load_training_rows(tiny["data"], ["stage9"])
    assert len(load_training_rows(tiny["data"], ["stage1", "stage2", "stage3"])) == 12


def test_model_card_records_stage_frames_data_and_command(tmp_path):
    card = write_model_card(
        tmp_path, "stage2", "runs/stage1", 128, ["stage2"], "data/prolongvid", 10, {"projector": 5}, {"lr": 1e-5},
        command="accelerate launch recipes/stage2.py --config recipes/prolongvid-7b/stage2.yaml",
    ).read_text()  # fmt: skip
    for expected in ("stage2", "Frames per video:** 128", "stage2 from `data/prolongvid`", "recipes/stage2.py"):
        assert expected in card


def test_progressive_runner_chains_outputs(tmp_path):
    inputs = {key: tmp_path / key for key in ("llm", "vision", "prolongvid", "data", "long_text")}
    commands = stage_commands(RECIPE_DIR, tmp_path / "runs", list(PIPELINE), 2, [], inputs)
    assert [c[c.index("--config") + 1] for c in commands] == [str(RECIPE_DIR / f"{s}.yaml") for s in PIPELINE]
    previous_output = str(inputs["llm"])
    for command in commands:
        starts = [command[i + 1] for i, arg in enumerate(command) if arg == "--model_name_or_path"]
        assert starts[-1] == previous_output  # the last occurrence wins in the parser
        previous_output = command[command.index("--output_dir") + 1]
        assert (REPO / command[command.index("--config_file") + 1]).is_file()


def test_stage_schedule_benchmark_favours_three_stages():
    from benchmarks.stage_schedule import main

    results = main(["--num_videos", "20000", "--gpus", "16"])
    three, mixed = results["three-stage"], results["single-stage mixed 32/128/192"]
    assert mixed["wait"] > 5 * three["wait"] and mixed["gpu_hours"] > three["gpu_hours"]  # same tokens, mixed steps
    assert results["single-stage fixed 192"]["gpu_hours"] > 1.5 * three["gpu_hours"]
    assert results["single-stage 1 fps <=192"]["wait"] > 5 * three["wait"]
    assert sum(stage["videos"] for stage in three["stages"].values()) == 20000


def test_lora_adapts_the_language_model_only(tiny):
    from transformers import AutoModelForImageTextToText
    from trl import ModelConfig

    from recipes.training.freezing import count_trainable
    from recipes.training.stage import maybe_apply_lora

    model = AutoModelForImageTextToText.from_pretrained(tiny["prolongvid"])
    apply_freezing(model, ["projector", "language_model"])
    args = ModelConfig(model_name_or_path=str(tiny["prolongvid"]), use_peft=True, lora_r=4,
                       lora_modules_to_save=["multi_modal_projector"])  # fmt: skip
    model = maybe_apply_lora(model, args)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert not any("vision_tower" in name for name in trainable)
    assert sum("lora_" in name for name in trainable) == 2 * 7 * 2  # 2 layers x 7 projections x (A, B)
    assert set(count_trainable(model)) == {"projector", "language_model"}
