"""End to end with the tiny model: every question answered once, resume after a kill, settings never mixed,
missing videos skipped or fatal, the out-of-memory message, and a fast `--help`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.fixtures import write_fixture
from evaluation.runner import EvaluationConfig, MissingVideosError, run_evaluation

REPO = Path(__file__).resolve().parents[2]


def _lines(out: Path) -> list[dict]:
    lines = []
    for file in sorted(out.glob("predictions-*.jsonl")):
        for line in file.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return lines


@pytest.fixture(scope="module")
def videomme(tmp_path_factory):
    return write_fixture("videomme", tmp_path_factory.mktemp("videomme"), num_videos=3, questions_per_video=2)


def config(tiny_checkpoint, data, out, **overrides):
    fields = dict(
        model=str(tiny_checkpoint),
        benchmark="videomme",
        data=str(data),
        out=str(out),
        frames=[4],
        dtype="float32",
        max_new_tokens=4,
        num_workers=2,
        device="cpu",
    )
    return EvaluationConfig(**{**fields, **overrides})


def test_run_answers_each_question_once_and_matches_a_direct_generation(tiny_checkpoint, videomme, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from processing import load_video

    out = tmp_path / "out"
    results = run_evaluation(config(tiny_checkpoint, videomme, out, frames=[4, 8]))
    assert len(results) == 2
    lines = _lines(out)
    assert len(lines) == 12
    assert len({(line["question_id"], line["frames"]) for line in lines}) == 12
    result = json.loads(results[1].read_text())
    assert result["frames"] == 8 and result["metrics"]["answered"] == 6 and result["metrics"]["questions"] == 6
    assert "np.linspace(0, total_frames - 1, 8, dtype=int)" in result["protocol"]["sampling_rule"]
    assert result["model_revision"].startswith("local:") and result["kit_version"]
    assert result["metrics"]["correct"] == sum(
        line["choice"] == line["answer"] for line in lines if line["frames"] == 8
    )

    # The runner's reply equals one generated here by hand: linspace frames, hand-written ChatML, greedy.
    line = next(line for line in lines if line["frames"] == 8 and line["question_id"] == "001-1")
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint).eval()
    frames, _ = load_video(videomme / "data" / "vid000.mp4", num_frames=8)
    text = (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\nWhat is shown in part 0 of video 0?\n"
        "A. option a 0\nB. option b 0\nC. option c 0\nD. option d 0\n\n"
        "Answer with the option's letter from the given choices directly."
    )
    prompt = f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<video>\n{text}<|im_end|>\n<|im_start|>assistant\n"
    batch = processor(text=[prompt], videos=[frames], return_tensors="pt")
    generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
    reply = processor.tokenizer.decode(generated[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert line["reply"] == reply.strip()

    # Same settings again: nothing is re-answered. A changed setting answers anew, never reusing the old lines.
    run_evaluation(config(tiny_checkpoint, videomme, out, frames=[8]))
    assert len(_lines(out)) == 12
    run_evaluation(config(tiny_checkpoint, videomme, out, frames=[8], max_new_tokens=3))
    assert len(_lines(out)) == 18


def test_resume_after_kill(tiny_checkpoint, tmp_path):
    data = write_fixture("videomme", tmp_path / "data", num_videos=4, questions_per_video=6, num_frames=16)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "evaluation", "run", "--model", str(tiny_checkpoint), "--benchmark", "videomme",
        "--data", str(data), "--out", str(out), "--frames", "4", "--dtype", "float32", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(_lines(out)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    answered_before = {line["question_id"] for line in _lines(out)}
    assert 2 <= len(answered_before) < 24, "the run should have been killed mid-way"
    with open(out / "predictions-0.jsonl", "a") as handle:  # a torn line, as a kill during a write leaves
        handle.write('{"settings_key": "')

    results = run_evaluation(config(tiny_checkpoint, data, out, max_new_tokens=None))
    lines = _lines(out)
    assert sorted(line["question_id"] for line in lines) == sorted({line["question_id"] for line in lines})
    assert len(lines) == 24
    assert json.loads(results[0].read_text())["metrics"]["answered"] == 24


def test_missing_and_unreadable_videos_are_skipped_or_fatal(tiny_checkpoint, videomme, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(videomme, data)
    (data / "data" / "vid001.mp4").unlink()
    (data / "data" / "vid002.mp4").write_bytes(b"not a video at all")
    with pytest.raises(MissingVideosError, match=r"(?s)1 video\(s\) of videomme missing \(2 questions\).*vid001\.mp4"):
        run_evaluation(config(tiny_checkpoint, data, tmp_path / "strict", strict=True))

    result = json.loads(run_evaluation(config(tiny_checkpoint, data, tmp_path / "out"))[0].read_text())
    metrics = result["metrics"]
    assert metrics["questions"] == 6 and metrics["answered"] == 2
    assert sorted(metrics["skipped"]) == ["002-1", "002-2", "003-1", "003-2"]
    assert "missing video" in metrics["skipped"]["002-1"] and "vid002.mp4" in metrics["skipped"]["003-1"]


def test_out_of_memory_names_frames_and_fixes(tiny_model_and_processor, monkeypatch):
    from evaluation.generation import EvaluationOutOfMemoryError, generate_reply, prepare_inputs

    model, processor = tiny_model_and_processor
    inputs = prepare_inputs(processor, np.zeros((8, 24, 24, 3), np.uint8), "Which?", torch.float32)

    def out_of_memory(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "generate", out_of_memory)
    with pytest.raises(EvaluationOutOfMemoryError, match=r"with 8 frames .*--frames 4.*--dtype float16 or bfloat16"):
        generate_reply(model, processor, inputs, max_new_tokens=4)


def test_help_is_fast():
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "evaluation", "run", "--help"], env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert time.perf_counter() - start < 3.0
    assert "--frames" in completed.stdout and "DIR/videomme/test-*.parquet" in completed.stdout


def test_subtitles_of_the_sampled_frames_reach_the_prompt(tiny_checkpoint, videomme):
    from transformers import AutoProcessor

    from evaluation.benchmarks import BENCHMARKS
    from evaluation.runner import QuestionDataset

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    benchmark = BENCHMARKS["videomme_w_subtitle"]
    questions = benchmark.read(videomme)
    settings = config(tiny_checkpoint, videomme, "unused", benchmark=benchmark.name, subtitle_frames=2)
    # 30 frames at 10 fps, cues of 1 s each; 2 sampled frames (0 and 29) show cues 0 and 2 only
    item = QuestionDataset(questions, benchmark, processor, settings, 4, torch.float32)[0]
    text = processor.tokenizer.decode(item["inputs"]["input_ids"][0])
    assert "subtitles are listed below: \nline 0 of vid000\nline 2 of vid000\nSelect the best answer" in text


def test_frame_cache_serves_the_frames(tiny_checkpoint, videomme, tmp_path):
    from transformers import AutoProcessor

    from evaluation.benchmarks import BENCHMARKS
    from evaluation.runner import QuestionDataset
    from processing.frame_cache import FrameCacheWriter

    writer = FrameCacheWriter(tmp_path / "cache", size=24)
    positions = np.linspace(0, 29, 4, dtype=int)  # the exact 4-frame sample of the 30-frame, 10 fps source
    writer.add("vid000", np.full((4, 24, 24, 3), 255, np.uint8), positions / 10.0, positions, 30, 10.0)
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    questions = BENCHMARKS["videomme"].read(videomme)
    cached = config(tiny_checkpoint, videomme, "unused", frame_cache=str(tmp_path / "cache"))
    pixels = QuestionDataset(questions, BENCHMARKS["videomme"], processor, cached, 4, torch.float32)[0]["inputs"]
    assert torch.equal(pixels["pixel_values_videos"], torch.ones_like(pixels["pixel_values_videos"]))  # white
    decoded = config(tiny_checkpoint, videomme, "unused")
    pixels = QuestionDataset(questions, BENCHMARKS["videomme"], processor, decoded, 4, torch.float32)[0]["inputs"]
    assert pixels["pixel_values_videos"][0, 0].max() == -1  # decoded: the gray ramp starts black


@pytest.mark.slow
def test_accelerate_launch_shards_and_gathers(tiny_checkpoint, videomme, tmp_path):
    out = tmp_path / "out"
    command = [
        "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", "29581", "-m", "evaluation", "run",
        "--model", str(tiny_checkpoint), "--benchmark", "videomme", "--data", str(videomme), "--out", str(out),
        "--frames", "4", "--dtype", "float32", "--max-new-tokens", "4",
    ]  # fmt: skip
    completed = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    per_rank = [len((out / f"predictions-{rank}.jsonl").read_text().splitlines()) for rank in (0, 1)]
    assert per_rank == [3, 3]
    result = json.loads(next(out.glob("results-videomme-4f-*.json")).read_text())
    assert result["metrics"]["answered"] == 6


def test_fps_sampling_and_limit(tiny_checkpoint, videomme, tmp_path):
    out = tmp_path / "out"
    # 30 frames at 10 fps; 5 fps takes every 2nd frame (15), under the cap of 32, over the cap of 8
    results = run_evaluation(config(tiny_checkpoint, videomme, out, frames=[32, 8], fps=5.0, limit=2))
    lines = _lines(out)
    assert sorted((line["frames"], line["frames_read"]) for line in lines) == [(8, 8), (8, 8), (32, 15), (32, 15)]
    result = json.loads(results[0].read_text())
    assert result["sampling"] == "fps=5" and result["metrics"]["questions"] == 2
    assert "round(avg_fps / 5)" in result["protocol"]["sampling_rule"]
