"""`build --turns-per-row N`: a video's QA pairs as multi-turn training rows (LLaVA-Video-178K's layout), shortest
answer first, the video once in the first user turn -- and the trainer's collator trains every answer of such a row."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_builder.build import build_dataset
from dataset_builder.records import AnnotationRecord, CaptionedSegment, QAPair
from dataset_builder.store import JsonlStore

ROOT = Path(__file__).resolve().parents[2]
# (question, answer): written in an order unlike the answers' lengths
PAIRS = (
    ("Summarize the video.", "A teal scene where a red circle moves from left to right."),
    ("What colour is the circle?", "red"),
    ("How many scenes?", "1."),
    ("Which object appears first?", "red circle"),
    ("Suggest a title.", "The red circle in the teal world"),
)


def write_work_dir(work: Path) -> None:
    qa = tuple(QAPair("general_qa", q, a, "short_global", None, "qa_global@1.0") for q, a in PAIRS)
    store = JsonlStore(work / "annotations", "shard-00000-of-00001")
    store.append(
        AnnotationRecord(
            video_id="world/v0", video="/videos/world/v0.mp4", relative_video="world/v0.mp4", source="world",
            fingerprint="f0", duration=30.0, fps=30.0, segmentation="none",
            segments=(CaptionedSegment(0.0, 30.0, "A teal scene."),), video_caption="A teal scene.", qa=qa,
            prompt_versions={"captions": ["short_caption@1.0"], "qa": ["qa_global@1.0"]}, models={"api": "m"},
            time=0.0,
        ).to_dict()
    )  # fmt: skip
    store.close()


def conversation(messages: list[dict]) -> list[tuple[str, str]]:
    """``(question, answer)`` per turn pair, asserting roles alternate and only the first user turn has the video."""
    pairs = []
    for index in range(0, len(messages), 2):
        user, assistant = messages[index], messages[index + 1]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        kinds = [item["type"] for item in user["content"]]
        assert kinds == (["video", "text"] if index == 0 else ["text"])
        pairs.append((user["content"][-1]["text"], assistant["content"][0]["text"]))
    return pairs


def stage1_rows(tmp_path: Path, turns_per_row: int) -> list[list[tuple[str, str]]]:
    write_work_dir(tmp_path / "work")
    stats = build_dataset(tmp_path / "work", tmp_path / "dataset", turns_per_row=turns_per_row)
    rows = load_dataset(str(tmp_path / "dataset"), "stage1", split="train", cache_dir=str(tmp_path / "cache"))
    assert stats["table"]["stage1"]["training rows"] == rows.num_rows
    return [conversation(messages) for messages in rows["messages"]]


def test_qa_pairs_are_grouped_shortest_answer_first_with_the_caption_alone(tmp_path):
    assert stage1_rows(tmp_path, turns_per_row=2) == [
        [("Describe this video in detail.", "A teal scene.")],
        [("How many scenes?", "1."), ("What colour is the circle?", "red")],
        [("Which object appears first?", "red circle"), ("Suggest a title.", "The red circle in the teal world")],
        [("Summarize the video.", "A teal scene where a red circle moves from left to right.")],
    ]


def test_one_turn_per_row_keeps_the_annotated_order(tmp_path):
    assert stage1_rows(tmp_path, turns_per_row=1) == [
        [("Describe this video in detail.", "A teal scene.")],
        *([pair] for pair in PAIRS),
    ]


def test_a_turn_count_below_one_is_refused_by_the_command_line(tmp_path):
    write_work_dir(tmp_path / "work")
    result = subprocess.run(
        [sys.executable, "-m", "dataset_builder", "build", "--work-dir", str(tmp_path / "work"), "--out",
         str(tmp_path / "dataset"), "--turns-per-row", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--turns-per-row must be 1 or more, got 0" in result.stderr
    assert not (tmp_path / "dataset" / "stage1").exists()


def test_the_collator_trains_every_answer_of_a_multi_turn_row():
    from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
    from recipes.training.collator import VideoSFTCollator
    from recipes.training.data import load_training_rows
    from recipes.training.tiny_inputs import write_tiny_dataset

    data = write_tiny_dataset(tempfile.mkdtemp())
    row = dict(load_training_rows(data, ["stage1"])[0])
    row["messages"] = [
        {"role": "user", "content": [{"type": "video", "text": None}, {"type": "text", "text": "Which colour?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "red."}]},
        {"role": "user", "content": [{"type": "text", "text": "Which object?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A blue square."}]},
    ]
    collator = VideoSFTCollator(build_tiny_processor(), num_frames=4, dataset_dir=data, label_mask="assistant")
    batch = collator([row])
    tokenizer = collator.processor.tokenizer
    assert tokenizer.decode(batch["labels"][batch["labels"] != -100]) == "red.<|im_end|>A blue square.<|im_end|>"
    text = tokenizer.decode(batch["input_ids"][0])
    assert text.count("<|im_start|>user") == 2 and text.index("<video>") < text.index("Which colour?")
    assert "<video>" not in text[text.index("Which object?") - 40 :]


@pytest.mark.parametrize("turns", [0, -1])
def test_build_dataset_refuses_a_turn_count_below_one(tmp_path, turns):
    write_work_dir(tmp_path / "work")
    with pytest.raises(ValueError, match="must be 1 or more"):
        build_dataset(tmp_path / "work", tmp_path / "dataset", turns_per_row=turns)
