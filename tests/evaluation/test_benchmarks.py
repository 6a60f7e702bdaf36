"""Benchmark readers on fixtures in each published layout, the exact prompt strings, subtitles and frame sampling."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.benchmarks import BENCHMARKS, BenchmarkDataError
from evaluation.fixtures import write_fixture, write_video
from evaluation.subtitles import parse_srt, subtitles_at_frames


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    return {
        name: write_fixture(name, root / name, num_videos=3, questions_per_video=2, num_frames=12)
        for name in ("videomme", "mlvu_dev", "longvideobench_val", "tempcompass_mc")
    }


def test_videomme_reader_and_prompt(fixtures):
    root = fixtures["videomme"]
    rows = pq.read_table(next((root / "videomme").glob("test-*.parquet"))).to_pylist()
    questions = BENCHMARKS["videomme"].read(root)
    assert [q.question_id for q in questions] == [row["question_id"] for row in rows]
    assert [q.answer for q in questions] == [row["answer"] for row in rows]
    assert [q.duration_group for q in questions] == [row["duration"] for row in rows]
    assert questions[0].video_path == str(root / "data" / f"{rows[0]['videoID']}.mp4")
    assert questions[0].category == rows[0]["task_type"]
    expected = (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n"
        "What is shown in part 0 of video 0?\n"
        "A. option a 0\nB. option b 0\nC. option c 0\nD. option d 0\n"
        "\nAnswer with the option's letter from the given choices directly."
    )
    assert BENCHMARKS["videomme"].prompt(questions[0]) == expected
    assert BENCHMARKS["videomme"].max_new_tokens == 16


def test_videomme_subtitle_prompt(fixtures):
    question = BENCHMARKS["videomme_w_subtitle"].read(fixtures["videomme"])[0]
    options = "A. option a 0\nB. option b 0\nC. option c 0\nD. option d 0"
    instruction = (
        "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
        "Respond with only the letter (A, B, C, or D) of the correct option."
    )
    body = f"{instruction}\nWhat is shown in part 0 of video 0?\n{options}\nThe best answer is:"
    assert BENCHMARKS["videomme_w_subtitle"].prompt(question, "hello\nworld") == (
        "This video's subtitles are listed below: \nhello\nworld\n" + body
    )
    assert BENCHMARKS["videomme_w_subtitle"].prompt(question, None) == (
        "This video's subtitles are listed below: \nNo subtitles available\n" + body
    )


def test_subtitles_of_sampled_frames():
    srt = (
        '1\n00:00:00,000 --> 00:00:01,000\n<font color="white" size=".72c">first</font>\n\n'
        '2\n00:00:01,500 --> 00:00:02,000\n<font color="white" size=".72c">second</font>\n\n'
        "3\n00:00:04,000 --> 00:00:05,000\nthird <i>plain</i>\n"
    )
    cues = parse_srt(srt)
    assert [(c.start, c.end) for c in cues] == [(0.0, 1.0), (1.5, 2.0), (4.0, 5.0)]
    # 50 frames at 10 fps; 3 samples -> frames 0, 24, 49: cue 1 holds frame 0 ([0, 10)), cue 2 is [15, 20) and
    # holds none, cue 3 is [40, 50) and holds frame 49.
    assert subtitles_at_frames(cues, total_frames=50, fps=10.0, frame_num=3) == "first\nthird plain"
    # 11 samples -> 0, 4, 9, ..., 49 (4.9 apart): frame 19 lies in [15, 20).
    assert subtitles_at_frames(cues, total_frames=50, fps=10.0, frame_num=11) == "first\nsecond\nthird plain"


def test_mlvu_reader_and_prompt(fixtures):
    root = fixtures["mlvu_dev"]
    first_file = sorted((root / "json").glob("*.json"))[0]
    entry = json.loads(first_file.read_text())[0]
    question = next(q for q in BENCHMARKS["mlvu_dev"].read(root) if q.question_id == f"{first_file.stem}/0")
    assert question.answer == "ABCD"[entry["candidates"].index(entry["answer"])]
    assert question.category == entry["question_type"]
    assert question.video_path == str(root / "video" / first_file.stem / entry["video"])
    candidates = "\n".join(f"({letter}) {text}" for letter, text in zip("ABCD", entry["candidates"]))
    assert BENCHMARKS["mlvu_dev"].prompt(question) == (
        f"\n{entry['question']}\n{candidates}\nOnly give the best option.\n"
    )


def test_longvideobench_reader_and_prompt(fixtures):
    root = fixtures["longvideobench_val"]
    entries = json.loads((root / "lvb_val.json").read_text())
    questions = BENCHMARKS["longvideobench_val"].read(root)
    assert [q.answer for q in questions] == ["ABCDE"[e["correct_choice"]] for e in entries]
    assert [q.duration_group for q in questions] == [str(e["duration_group"]) for e in entries]
    five = next(q for q, e in zip(questions, entries) if len(e["candidates"]) == 5)
    assert five.letters == "ABCDE"
    entry = entries[0]
    options = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCDE", entry["candidates"]))
    assert BENCHMARKS["longvideobench_val"].prompt(questions[0]) == (
        f"{entry['question']}\n{options}\nAnswer with the option's letter from the given choices directly.\n"
    )
    assert BENCHMARKS["longvideobench_val"].max_new_tokens == 32


def test_tempcompass_reader_and_prompt(fixtures):
    root = fixtures["tempcompass_mc"]
    rows = pq.read_table(next((root / "multi-choice").glob("*.parquet"))).to_pylist()
    questions = BENCHMARKS["tempcompass_mc"].read(root)
    assert [q.answer for q in questions] == [row["answer"][0] for row in rows]
    assert [q.category for q in questions] == [row["dim"] for row in rows]
    assert questions[0].option_texts == ("motion a", "motion b", "motion c")
    assert BENCHMARKS["tempcompass_mc"].prompt(questions[0]) == (
        rows[0]["question"] + "\nPlease directly give the best option:"
    )


def test_schema_errors_name_the_problem(tmp_path):
    (tmp_path / "videomme").mkdir()
    pq.write_table(pa.Table.from_pylist([{"videoID": "x", "question": "q"}]), tmp_path / "videomme" / "test-0.parquet")
    with pytest.raises(BenchmarkDataError, match=r"missing columns \[.*'question_id'.*\].*Expected layout"):
        BENCHMARKS["videomme"].read(tmp_path)
    with pytest.raises(BenchmarkDataError, match="no annotation file matches 'lvb_val.json'"):
        BENCHMARKS["longvideobench_val"].read(tmp_path)
    (tmp_path / "lvb_val.json").write_text(json.dumps([{"id": "1", "question": "q"}]))
    with pytest.raises(BenchmarkDataError, match=r"entry 0 lacks \['video_path', 'candidates'"):
        BENCHMARKS["longvideobench_val"].read(tmp_path)


def test_load_video_uses_upstream_linspace(tmp_path):
    """The kit's reader returns frames np.linspace(0, total - 1, N, dtype=int), upstream's eval rule."""
    from processing import load_video

    path = write_video(tmp_path / "ramp.mp4", num_frames=30)  # frame i has gray level 8 * i
    for count in (7, 16, 30, 45):
        frames, _ = load_video(path, num_frames=count)
        read = np.rint(frames[:, 0, 0, 0] / 8).astype(int)
        np.testing.assert_array_equal(read, np.linspace(0, 29, count, dtype=int))
    # --fps 2 on a 10 fps video: every 5th frame, and above the cap `frames` uniform ones instead
    frames, _ = load_video(path, fps=2.0, max_frames=16)
    np.testing.assert_array_equal(np.rint(frames[:, 0, 0, 0] / 8).astype(int), np.arange(0, 30, 5))
    frames, _ = load_video(path, fps=2.0, max_frames=4)
    np.testing.assert_array_equal(np.rint(frames[:, 0, 0, 0] / 8).astype(int), np.linspace(0, 29, 4, dtype=int))


def test_chat_prompt_is_qwen_1_5_chatml_with_video_first(tiny_checkpoint):
    from transformers import AutoProcessor

    import modeling_prolongvid  # noqa: F401
    from evaluation.generation import chat_prompt

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<video>\nWhich option?\nA. x<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert chat_prompt(processor, "Which option?\nA. x") == expected
