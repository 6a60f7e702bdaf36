"""Training maths as upstream (ProLongVid's LLaVA-NeXT fork), each against an independent re-implementation written
here: the label mask of `preprocess_qwen`, the per-sample loss normalisation, the global batch, length caps, per-row
frame counts of the mixed baseline and the length-grouped sampler. Unit tests, plus one short 2-process run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from trl import SFTConfig

from modeling_prolongvid import ProLongVidForConditionalGeneration
from modeling_prolongvid.tiny_checkpoint import build_tiny_config, build_tiny_processor
from recipes.training.arguments import parse_recipe_arguments
from recipes.training.collator import MediaReadError, VideoSFTCollator
from recipes.training.data import load_training_rows
from recipes.training.sampling import GroupedBatchOrder
from recipes.training.sft import frame_count_groups
from recipes.training.stage import gradient_accumulation_steps
from recipes.training.tiny_inputs import write_tiny_dataset, write_tiny_video
from recipes.training.trainer import ProLongVidSFTTrainer
from recipes.training.validation import apply_row_policy, validate_rows
from tests.recipes.loss_normalization_run import build_model, training_rows
from tests.recipes.test_recipes_train import REPO, _free_port

IGNORE = -100


@pytest.fixture(scope="module")
def processor():
    return build_tiny_processor()


@pytest.fixture(scope="module")
def video_row(tmp_path_factory):
    """A two-round conversation about a video, with a newline inside the first question."""
    directory = tmp_path_factory.mktemp("maths")
    write_tiny_video(directory / "clip.mp4", num_frames=6)
    return directory, {
        "video_id": "clip",
        "video": "clip.mp4",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "video", "text": None}, {"type": "text", "text": "What happens?\nBe brief."}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A ball rolls."}]},
            {"role": "user", "content": [{"type": "text", "text": "And then?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "It stops."}]},
        ],
    }


def upstream_preprocess_qwen(tokenizer, turns: list[tuple[str, str]], video_tokens: int, video_token: str):
    """`preprocess_qwen` as upstream writes it (qwen_1_5 template): the system turn, then every turn tokenized on its
    own as `<|im_start|>role\\ncontent<|im_end|>\\n`; user and system turns masked, assistant turns kept whole; then
    every `\\n`, `<|im_start|>` and `<|im_end|>` token un-masked. The model later splices the video features in place
    of the one placeholder, labelled -100: expanded here to `video_tokens` placeholders."""
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1
    unmasked = set(newline) | set(tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]))

    def encode(role: str, content: str) -> list[int]:
        return tokenizer(f"<|im_start|>{role}\n{content}<|im_end|>\n", add_special_tokens=False)["input_ids"]

    input_ids = encode("system", "You are a helpful assistant.")
    labels = [IGNORE] * len(input_ids)
    for role, content in turns:
        ids = encode(role, content)
        input_ids += ids
        labels += ids if role == "assistant" else [IGNORE] * len(ids)
    labels = [token if token in unmasked else label for token, label in zip(input_ids, labels)]
    video_id = tokenizer.convert_tokens_to_ids(video_token)
    expanded_ids, expanded_labels = [], []
    for token, label in zip(input_ids, labels):
        count = video_tokens if token == video_id else 1
        expanded_ids += [token] * count
        expanded_labels += [IGNORE if token == video_id else label] * count
    return expanded_ids, expanded_labels


def test_upstream_label_mask_is_preprocess_qwen_token_by_token(processor, video_row):
    directory, row = video_row
    batch = VideoSFTCollator(processor, num_frames=3, dataset_dir=directory, label_mask="upstream")([row])
    turns = [("user", "<video>\nWhat happens?\nBe brief."), ("assistant", "A ball rolls."),
             ("user", "And then?"), ("assistant", "It stops.")]  # fmt: skip
    ids, labels = upstream_preprocess_qwen(processor.tokenizer, turns, processor.num_video_tokens(3), "<video>")
    assert batch["input_ids"][0].tolist() == ids
    assert batch["labels"][0].tolist() == labels
    trained = processor.tokenizer.decode([token for token in labels if token != IGNORE])
    # system turn: markers only; first user turn: its 3 newlines too (after the role, the video line, inside the text)
    assert trained == (
        "<|im_start|>\n<|im_end|>\n"
        + "<|im_start|>\n\n\n<|im_end|>\n"
        + "<|im_start|>assistant\nA ball rolls.<|im_end|>\n"
        "<|im_start|>\n<|im_end|>\n" + "<|im_start|>assistant\nIt stops.<|im_end|>\n"
    )


def test_assistant_label_mask_trains_the_answers_only(processor, video_row):
    directory, row = video_row
    batch = VideoSFTCollator(processor, num_frames=3, dataset_dir=directory, label_mask="assistant")([row])
    trained = batch["labels"][0][batch["labels"][0] != IGNORE]
    assert processor.tokenizer.decode(trained) == "A ball rolls.<|im_end|>It stops.<|im_end|>"


# ----------------------------------------------------------------------------- loss normalisation
def hand_loss(model, normalization: str) -> torch.Tensor:
    """The loss of the 4 rows computed row by row from the logits: `sample` = mean over rows of each row's mean over
    its trained next-token predictions; `token` = sum over all trained predictions / their number."""
    sums, counts = [], []
    for row in training_rows():
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        targets = labels[1:]
        trained = targets != IGNORE
        sums.append(-log_probs[trained, targets[trained]].sum())
        counts.append(int(trained.sum()))
    if normalization == "sample":
        return torch.stack([total / count for total, count in zip(sums, counts)]).mean()
    return torch.stack(sums).sum() / sum(counts)


def test_loss_normalization_matches_the_hand_computation_over_2_processes_and_2_accumulation_steps(tmp_path):
    """2 gloo DDP processes x per-device batch 1 x accumulation 2 = one step over rows with 2, 4, 9, 17 trained
    tokens. SGD at lr 1 makes the update minus the gradient: both it and the logged loss must equal the hand
    computation of each normalisation, and the two normalisations must differ. `sample` at per-device batch 2 (rows
    padded together, no accumulation) must give the same step as at batch 1."""
    command = ["accelerate", "launch", "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_processes", "2", "--main_process_port", str(_free_port()),
               str(Path(__file__).with_name("loss_normalization_run.py")), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    start = build_model().state_dict()
    updates = {}
    for mode in ("sample", "token", "sample-batched"):
        normalization = mode.removesuffix("-batched")
        model = build_model()
        expected_loss = hand_loss(model, normalization)
        expected_loss.backward()
        trained = torch.load(tmp_path / f"{mode}.pt")
        updates[mode] = {name: trained[name] - start[name] for name in start}
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(updates[mode][name], -parameter.grad, rtol=1e-4, atol=1e-7)
        logged = json.loads((tmp_path / f"{mode}.json").read_text())
        assert logged["world"] == 2 and logged["losses"] == [pytest.approx(expected_loss.item(), rel=1e-5)]
    difference = updates["sample"]["lm_head.weight"] - updates["token"]["lm_head.weight"]
    assert difference.norm() > 0.05 * updates["token"]["lm_head.weight"].norm(), "the normalisations must differ"


# ----------------------------------------------------------------------------- global batch
RECIPE_DIR = REPO / "recipes" / "prolongvid-7b"
CPU = ["--use_cpu", "true", "--bf16", "false"]


def _sized_for_gpus(recipe: Path) -> int:
    return int(re.match(r"# Sized for: (\d+) x", recipe.read_text()).group(1))


@pytest.mark.parametrize("recipe", sorted(RECIPE_DIR.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_recipe_states_its_global_batch(recipe):
    raw = yaml.safe_load(recipe.read_text())
    assert "gradient_accumulation_steps" not in raw, "accumulation is derived from global_batch_size"
    script_args, training_args, _ = parse_recipe_arguments(["--config", str(recipe), *CPU])
    data_parallel = _sized_for_gpus(recipe) // script_args.sequence_parallel_size
    accumulation = gradient_accumulation_steps(
        script_args.global_batch_size, data_parallel, training_args.per_device_train_batch_size, 1
    )
    assert accumulation * data_parallel * training_args.per_device_train_batch_size == script_args.global_batch_size
    if recipe.stem.startswith("stage") or recipe.stem == "mixed":
        assert script_args.global_batch_size == 1 * 8 * 32  # upstream's stage-2 script: per-device x accum x GPUs


def test_gradient_accumulation_is_derived_or_refused():
    assert gradient_accumulation_steps(256, dp_size=64, per_device=1, given=1) == 4
    assert gradient_accumulation_steps(256, dp_size=32, per_device=1, given=8) == 8  # agrees: accepted
    with pytest.raises(ValueError, match="disagrees with global_batch_size=256.*drop gradient_accumulation_steps"):
        gradient_accumulation_steps(256, dp_size=64, per_device=1, given=2)
    with pytest.raises(ValueError, match="not a multiple of 48 data-parallel ranks.*set global_batch_size"):
        gradient_accumulation_steps(256, dp_size=48, per_device=1, given=1)


# ----------------------------------------------------------------------------- length caps
TEXT_BUDGET = 8192  # text tokens every cap leaves beside the stage's largest media
# One anyres_max_9 image, bounded by hand: the 27 x 27 base tile, the unpadded grid of at most 9 tiles' features with
# upstream's 1.1 tolerance before it downscales (1.1^2 x 9 x 729), one newline per row (at most 6 tiles x 27 rows).
IMAGE_TOKENS_BOUND = 27 * 27 + int(1.1**2 * 9 * 27 * 27) + 6 * 27


@pytest.mark.parametrize(
    "recipe", [path for path in sorted(RECIPE_DIR.glob("*.yaml")) if path.stem != "context_extension"], ids=str
)
def test_length_caps_hold_the_stage_media_and_its_text(recipe):
    """stage 3 used to leave 2,816 text tokens beside 192 x 156 video tokens; image stages capped at 8,192."""
    script_args, training_args, _ = parse_recipe_arguments(["--config", str(recipe), *CPU])
    if script_args.num_frames is None:
        media = IMAGE_TOKENS_BOUND
    else:
        frames = max([script_args.num_frames, *script_args.frames_by_subset().values()])
        media = frames * 12 * (12 + 1)  # 12 x 12 pooled grid + a newline per row
    assert training_args.max_length >= media + TEXT_BUDGET, (training_args.max_length, media)


# ----------------------------------------------------------------------------- rows that cannot train (issue 11)
def _row(video_id: str, answer, video: str | None = "clip.mp4", user_text="What happens?") -> dict:
    return {
        "video_id": video_id,
        "video": video,
        "messages": [
            {"role": "user", "content": [{"type": "video", "text": None}, {"type": "text", "text": user_text}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


def test_a_none_answer_would_train_on_the_word_none(processor, video_row):
    """The failure as found: collated as is, an assistant text None trains on the literal word "None"."""
    directory, _ = video_row
    batch = VideoSFTCollator(processor, num_frames=2, dataset_dir=directory, label_mask="assistant")(
        [_row("none", None)]
    )
    assert processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] != IGNORE]) == "None<|im_end|>"


def test_rows_that_cannot_train_are_dropped_with_ids_and_reasons(processor, video_row, tmp_path):
    directory, good = video_row
    rows = Dataset.from_list(
        [
            good,
            _row("none", None),
            _row("empty", "  "),
            _row("missing", "A ball.", video="gone.mp4"),
            _row("no_path", "A ball.", video=None),
            _row("null_question", "A ball.", user_text=None),
            {**_row("unanswered", "x"), "messages": _row("unanswered", "x")["messages"][:1]},
            _row("long", "A ball. " * 40),
        ]
    )
    collator = VideoSFTCollator(processor, num_frames=2, dataset_dir=directory, max_length=120)
    kept, report = validate_rows(rows, collator)
    reasons = {row.row_id: row.reason for row in report.dropped}
    assert list(kept["video_id"]) == ["clip"] and report.num_rows == 8
    assert reasons["none"].startswith("assistant text is None")
    assert reasons["empty"].startswith("empty assistant text")
    assert reasons["missing"] == f"video file not found: {directory / 'gone.mp4'}"
    assert reasons["no_path"].startswith("video without a path")
    assert reasons["null_question"].startswith("user text is None")
    assert reasons["unanswered"].startswith("no assistant turn")
    assert re.fullmatch(r"longer than max_length: \d+ tokens > max_length 120", reasons["long"])
    assert kept["length"] == [collator(list(kept))["input_ids"].shape[1]], "length is the collated token count"

    report_path = tmp_path / "dropped_rows.jsonl"
    assert len(apply_row_policy(rows, collator, "drop", report_path)) == 1
    assert [json.loads(line)["row_id"] for line in report_path.read_text().splitlines()] == list(reasons)
    with pytest.raises(ValueError, match="7 of 8 rows cannot train.*set invalid_rows drop"):
        apply_row_policy(rows, collator, "error", None)
    with pytest.raises(ValueError, match="No row can train"):
        apply_row_policy(rows.select([1, 2]), collator, "drop", None)


def test_unreadable_media_is_skipped_counted_and_never_replaced(processor, video_row):
    directory, good = video_row
    (directory / "corrupt.mp4").write_bytes(b"not a video" * 100)
    corrupt = {**_row("corrupt", "A ball rolls."), "video": "corrupt.mp4"}
    collator = VideoSFTCollator(processor, num_frames=3, dataset_dir=directory)
    batch = collator([corrupt, good])
    alone = collator([good])
    assert batch["skipped_media"].tolist() == [True, False]
    assert (batch["labels"][0] == IGNORE).all(), "the skipped row trains nothing"
    assert not batch["pixel_values_videos"][0].std(), "its video is blank, not another row's"
    length = int(alone["attention_mask"].sum())
    assert torch.equal(batch["labels"][1, :length], alone["labels"][0]), "the other row is untouched"
    assert torch.equal(batch["pixel_values_videos"][1], alone["pixel_values_videos"][0])
    with pytest.raises(MediaReadError, match="Row corrupt: its media cannot be read.*set media_errors skip"):
        VideoSFTCollator(processor, num_frames=3, dataset_dir=directory, media_errors="raise")([corrupt])

    model = ProLongVidForConditionalGeneration(build_tiny_config(processor.tokenizer))
    args = SFTConfig(output_dir=str(directory / "out"), use_cpu=True, report_to="none", per_device_train_batch_size=1,
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})  # fmt: skip
    trainer = ProLongVidSFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([good]), data_collator=collator,
        processing_class=processor,
    )  # fmt: skip
    loss = trainer.compute_loss(model.train(), collator([corrupt]))
    loss.backward()
    assert loss.item() == 0 and all(not p.grad.any() for p in model.parameters() if p.grad is not None)
    assert trainer.skipped_media == 1 and trainer._metrics["train"]["skipped_media"] == [1]


# ----------------------------------------------------------------------------- mixed baseline frames
def test_mixed_rows_keep_their_subsets_frame_count(processor):
    tiny_data = write_tiny_dataset(Path(tempfile.mkdtemp()) / "data", rows_per_subset=2)
    rows = load_training_rows(tiny_data, ["stage1", "stage2", "stage3"])
    frames = {"stage1": 2, "stage2": 3, "stage3": 5}
    collator = VideoSFTCollator(processor, num_frames=5, dataset_dir=tiny_data, subset_num_frames=frames)
    kept, _ = validate_rows(rows, collator)
    for row in kept:
        batch = collator([row])
        assert batch["pixel_values_videos"].shape[1] == frames[row["subset"]], row["video_id"]
        assert int((batch["input_ids"] == processor.video_token_id).sum()) == frames[row["subset"]] * 2 * 3
        assert row["length"] == batch["input_ids"].shape[1]
    with pytest.raises(ValueError, match="videos of \\[2, 3\\] frames.*sampling.py.*per_device_train_batch_size 1"):
        collator([rows[0], rows[2]])
    script_args, *_ = parse_recipe_arguments(["--config", str(RECIPE_DIR / "mixed.yaml"), *CPU])
    assert script_args.frames_by_subset() == {"stage1": 32, "stage2": 128, "stage3": 192}  # paper App. B
    script_args, *_ = parse_recipe_arguments(
        ["--config", str(RECIPE_DIR / "mixed.yaml"), *CPU, "--subset_num_frames", "none"]
    )
    assert script_args.frames_by_subset() == {} and script_args.num_frames == 192  # the kit's former choice


def test_grouped_order_gives_each_rank_batches_of_one_frame_count():
    """accelerate deals the per-device batches of the sampler's order out to 2 ranks (its own BatchSamplerShard):
    every rank's batch is of one group, every row trains each epoch (a group's short last batch is filled with its
    own rows), and the order changes with the epoch but not between ranks."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    groups = [32] * 13 + [128] * 6 + [192] * 3  # 13, 6, 3 rows: none a multiple of the batch of 4
    orders = []
    for epoch in (0, 1):
        order = GroupedBatchOrder(groups, batch_size=4, seed=7)
        order.set_epoch(epoch)
        ranks = [list(BatchSamplerShard(BatchSampler(order, 4, False), 2, rank)) for rank in (0, 1)]
        batches = [batch for rank in ranks for batch in rank]
        assert all(len(batch) == 4 and len({groups[i] for i in batch}) == 1 for batch in batches), batches
        assert set(i for batch in batches for i in batch) == set(range(len(groups)))
        assert len(order) == 16 + 8 + 4  # 13 -> 16, 6 -> 8, 3 -> 4
        orders.append(list(order))
        same = GroupedBatchOrder(groups, batch_size=4, seed=7)  # another rank's sampler
        same.set_epoch(epoch)
        assert list(same) == orders[-1]
    assert orders[0] != orders[1]


def test_mixed_rows_train_in_batches_of_one_frame_count(processor, tmp_path):
    """The recipes' trainer batches the mixed rows by their subset's frame count (`frame_count_groups`): every batch
    of its data loader collates (the collator refuses two frame counts) at a per-device batch of 2."""
    tiny_data = write_tiny_dataset(tmp_path / "data", rows_per_subset=3)
    rows = load_training_rows(tiny_data, ["stage1", "stage2", "stage3"])
    frames = {"stage1": 2, "stage2": 3, "stage3": 5}
    collator = VideoSFTCollator(processor, num_frames=5, dataset_dir=tiny_data, subset_num_frames=frames)
    groups = frame_count_groups(rows, collator)
    assert groups == [frames[subset] for subset in rows["subset"]]
    assert frame_count_groups(load_training_rows(tiny_data, ["stage1"]), collator) is None  # one count: no grouping
    args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", per_device_train_batch_size=2,
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})  # fmt: skip
    trainer = ProLongVidSFTTrainer(
        model=ProLongVidForConditionalGeneration(build_tiny_config(processor.tokenizer)), args=args,
        train_dataset=rows, data_collator=collator, processing_class=processor, batch_groups=groups,
        loss_normalization="token",
    )  # fmt: skip
    shapes = [batch["pixel_values_videos"].shape[:2] for batch in trainer.get_train_dataloader()]
    assert sorted(int(frames) for _, frames in shapes) == [2, 2, 3, 3, 5, 5]  # 3 rows a subset -> 2 batches of 2
    assert all(int(size) == 2 for size, _ in shapes)


# ----------------------------------------------------------------------------- length grouping
def test_recipes_group_by_length_and_batches_are_grouped(tmp_path):
    """The 7B recipes train with transformers' `batch_rebalance` sampler over the `length` column that
    `validate_rows` writes. At per-device batch 1 it is upstream's `group_by_modality_length` on one modality: each
    optimizer step is a random draw of the dataset, ordered longest first over its accumulation steps."""
    for recipe in sorted(RECIPE_DIR.glob("*.yaml")):
        _, training_args, _ = parse_recipe_arguments(["--config", str(recipe), *CPU])
        expected = "random" if recipe.stem == "context_extension" else "batch_rebalance"
        assert training_args.train_sampling_strategy == expected, recipe.stem

    lengths = torch.randperm(64, generator=torch.Generator().manual_seed(0)).add(10).tolist()
    rows = Dataset.from_list([{"input_ids": [1] * n, "labels": [1] * n, "length": n} for n in lengths])
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=1,
                     gradient_accumulation_steps=8, train_sampling_strategy="batch_rebalance",
                     remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})  # fmt: skip
    trainer = ProLongVidSFTTrainer(
        model=build_model(), args=args, train_dataset=rows, data_collator=lambda batch: batch,
        processing_class=build_tiny_processor().tokenizer,
    )  # fmt: skip
    drawn = [batch[0]["length"] for batch in trainer.get_train_dataloader()]
    steps = [drawn[i : i + 8] for i in range(0, len(drawn), 8)]
    assert sorted(drawn) == sorted(lengths), "every row once per epoch"
    assert all(step == sorted(step, reverse=True) for step in steps), "each step runs longest first"
    assert steps[0] != sorted(lengths, reverse=True)[:8], "steps are random draws, not the globally longest rows"
