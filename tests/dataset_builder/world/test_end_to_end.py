"""World videos through the kit's own pipeline: annotate (world frame models by object path, the world captioner
server) -> build; the built captions and QA agree with the ground truth, and the segments are the scenes."""

import re
import time
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_builder.__main__ import main
from dataset_builder.world.captioner_server import world_captioner_server
from dataset_builder.world.language import parse_description
from dataset_builder.world.perception import segmentation_recovery
from dataset_builder.world.questions import LETTERS, POST_PROMPT
from dataset_builder.world.render import write_world_video
from dataset_builder.world.timeline import build_timeline

# (seed, duration): a short video that is not segmented (< 60 s), a segmented short one, a medium and a long one.
VIDEOS = ((4, 40.0), (1, 95.0), (2, 150.0), (3, 330.0))
FRAME_MODELS = [
    "--frame-captioner", "dataset_builder.world.perception:WorldFrameCaptioner",
    "--embedder", "dataset_builder.world.perception:WorldFrameEmbedder",
]  # fmt: skip


def same_timeline(parsed, truth, tolerance=1.0):
    """Scenes, appearances and flashes agree: names and order exactly, times within ``tolerance`` seconds."""
    close = lambda a, b: abs(a - b) <= tolerance  # noqa: E731
    assert [s.background for s in parsed.scenes] == [s.background for s in truth.scenes]
    assert all(close(p.start, t.start) and close(p.end, t.end) for p, t in zip(parsed.scenes, truth.scenes))
    assert [a.name for a in parsed.appearances] == [a.name for a in truth.appearances]
    for p, t in zip(parsed.appearances, truth.appearances):
        assert close(p.start, t.start) and close(p.end, t.end), (p, t)
        if t.end - t.start >= 2.5:  # seen in two frames or more: the direction is visible
            assert p.left_to_right == t.left_to_right, (p, t)
    assert [f.colour for f in parsed.flashes] == [f.colour for f in truth.flashes]
    assert all(close(p.start, t.start) and close(p.end, t.end) for p, t in zip(parsed.flashes, truth.flashes))


def true_answer(question: str, truth) -> str:
    """The correct option of a multiple-choice question, computed here from the ground truth (not questions.py)."""
    stem = question.split("\n")[0]
    backgrounds = [s.background for s in truth.scenes]
    names = [a.name for a in truth.appearances]
    if stem == "How many scenes does the video have?":
        return str(len(truth.scenes))
    if stem == "How many objects appear in the video?":
        return str(len(names))
    if stem == "What colour is the background at the start of the video?":
        return backgrounds[0]
    if stem == "What colour is the background at the end of the video?":
        return backgrounds[-1]
    if stem == "Which object appears first?":
        return names[0]
    if stem == "Which object appears last?":
        return names[-1]
    if stem == "Which sequence of background colours does the video show?":
        return ", then ".join(backgrounds)
    if stem == "The screen briefly flashes a single colour. Which colour?":
        return truth.flashes[0].colour
    if match := re.fullmatch(r"What colour is the background when the (\w+ \w+) appears\?", stem):
        appearance = next(a for a in truth.appearances if a.name == match.group(1))
        return truth.scene_at((appearance.start + appearance.end) / 2).background
    if match := re.fullmatch(r"What colour is the (\w+) in the video\?", stem):
        return next(a.colour for a in truth.appearances if a.shape == match.group(1))
    if match := re.fullmatch(r"Which object is (\w+)\?", stem):
        return next(a.name for a in truth.appearances if a.colour == match.group(1))
    if match := re.fullmatch(r"Which object appears right after the (\w+ \w+)\?", stem):
        return names[names.index(match.group(1)) + 1]
    if match := re.fullmatch(r"Which background colour comes right after (\w+)\?", stem):
        return next(b for a, b in zip(backgrounds, backgrounds[1:]) if a == match.group(1))
    raise AssertionError(f"unknown multiple-choice question {stem!r}")


@pytest.mark.timeout(240)
def test_world_videos_annotate_and_build_to_the_ground_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    videos, truths = tmp_path / "videos", {}
    for seed, duration in VIDEOS:
        timeline = build_timeline(seed, duration)
        truths[f"world-{seed}"] = timeline
        write_world_video(videos / f"world-{seed}.mp4", timeline)
    work, out = tmp_path / "work", tmp_path / "dataset"
    with world_captioner_server() as server:
        started = time.perf_counter()
        status = main([
            "annotate", "--videos", str(videos), "--out", str(work), "--base-url", server.base_url, "--model", "world",
            "--no-progress", "--frame-size", "64", "--frame-cache-size", "64", "--segmentation", "semantic",
            "--questions-per-type", "3", "--frames-per-segment", "1200", *FRAME_MODELS,
        ])  # fmt: skip
        seconds = time.perf_counter() - started
    assert status == 0
    assert main(["build", "--work-dir", str(work), "--out", str(out)]) == 0

    captions = load_dataset(str(out), "captions", split="train", cache_dir=str(tmp_path / "cache"))
    qa = load_dataset(str(out), "qa", split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(Path(row["video"]).stem for row in captions) == sorted(truths)
    predicted, cuts = [], []
    for row in captions:
        truth = truths[Path(row["video"]).stem]
        same_timeline(parse_description(row["video_caption"]), truth)
        if truth.duration >= 60:
            assert row["segmentation"] == "semantic"
            predicted.append([segment["start"] for segment in row["segments"][1:]])
            cuts.append([scene.start for scene in truth.scenes[1:]])
    precision, recall = segmentation_recovery(sum(predicted, []), sum(cuts, []), tolerance=2.0)
    print(f"annotate: {seconds:.1f} s for {len(VIDEOS)} videos; segmentation precision {precision}, recall {recall}")
    assert (precision, recall) == (1.0, 1.0), (predicted, cuts)

    multiple_choice = 0
    by_video = {row["video_id"]: truths[Path(row["video"]).stem] for row in captions}
    for row in qa:
        lines = row["question"].split("\n")
        if lines[-1] != POST_PROMPT:
            continue
        multiple_choice += 1
        options = {line[0]: line[3:] for line in lines[1:5]}
        assert list(options) == list(LETTERS)
        assert true_answer(row["question"], by_video[row["video_id"]]) in row["answer"], row
    assert multiple_choice >= 12
    assert {row["task_type"] for row in qa} == {"summarization", "general_qa", "creative_writing", "temporal"}
