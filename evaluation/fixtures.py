"""Tiny benchmark folders in each benchmark's published layout, with generated videos (for tests and benchmarks).

Frame ``i`` of every generated video is filled with gray level ``(8 * i) % 256``, so a test can tell which frames
were read. Nothing is downloaded.

Example:
    >>> from evaluation.fixtures import write_fixture
    >>> root = write_fixture("videomme", "/tmp/videomme-fixture", num_videos=2, questions_per_video=3)
    >>> sorted(p.name for p in root.iterdir())
    ['data', 'subtitle', 'videomme']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

MLVU_TASKS = ("1_plotQA", "2_needle", "3_ego", "4_count", "5_order", "6_anomaly_reco", "7_topic_reasoning")
LVB_GROUPS = (15, 60, 600, 3600)
TEMPCOMPASS_DIMS = ("action", "speed", "direction", "order", "attribute_change")


def write_video(path: str | os.PathLike, num_frames: int, fps: int = 10, width: int = 64, height: int = 48) -> Path:
    """An H.264 MP4 whose frame ``i`` is gray level ``(8 * i) % 256``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(num_frames):
            frame = np.full((height, width, 3), (8 * index) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def write_fixture(
    benchmark: str,
    root: str | os.PathLike,
    num_videos: int = 3,
    questions_per_video: int = 2,
    num_frames: int = 30,
    fps: int = 10,
    seed: int = 0,
) -> Path:
    """Write a benchmark folder (``videomme``/``videomme_w_subtitle``, ``mlvu_dev``, ``longvideobench_val`` or
    ``tempcompass_mc``) with ``num_videos`` videos of ``num_frames`` frames and ``questions_per_video`` questions
    each, random correct answers drawn with ``seed``. Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if benchmark in ("videomme", "videomme_w_subtitle"):
        _write_videomme(root, rng, num_videos, questions_per_video, num_frames, fps)
    elif benchmark == "mlvu_dev":
        _write_mlvu(root, rng, num_videos, questions_per_video, num_frames, fps)
    elif benchmark == "longvideobench_val":
        _write_longvideobench(root, rng, num_videos, questions_per_video, num_frames, fps)
    elif benchmark == "tempcompass_mc":
        _write_tempcompass(root, rng, num_videos, questions_per_video, num_frames, fps)
    else:
        raise ValueError(f"no fixture writer for benchmark {benchmark!r}")
    return root


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _write_videomme(root, rng, num_videos, questions_per_video, num_frames, fps) -> None:
    rows = []
    durations = ("short", "medium", "long")
    for video in range(num_videos):
        video_id = f"vid{video:03d}"
        write_video(root / "data" / f"{video_id}.mp4", num_frames, fps)
        cues = []
        for cue in range(3):
            start, end = cue * num_frames / fps / 3, (cue + 1) * num_frames / fps / 3
            text = f'<font color="white" size=".72c">line {cue} of {video_id}</font>'
            cues.append(f"{cue + 1}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n")
        (root / "subtitle").mkdir(exist_ok=True)
        (root / "subtitle" / f"{video_id}.srt").write_text("\n".join(cues))
        for number in range(questions_per_video):
            rows.append(
                {
                    "video_id": f"{video + 1:03d}",
                    "duration": durations[video % 3],
                    "domain": "Knowledge",
                    "sub_category": "Humanity & History",
                    "url": f"https://example.invalid/{video_id}",
                    "videoID": video_id,
                    "question_id": f"{video + 1:03d}-{number + 1}",
                    "task_type": ("Counting Problem", "Action Recognition")[number % 2],
                    "question": f"What is shown in part {number} of video {video}?",
                    "options": [f"{letter}. option {letter.lower()} {number}" for letter in "ABCD"],
                    "answer": "ABCD"[int(rng.integers(4))],
                }
            )
    _write_parquet(root / "videomme" / "test-00000-of-00001.parquet", rows)


def _write_mlvu(root, rng, num_videos, questions_per_video, num_frames, fps) -> None:
    entries: dict[str, list] = {}
    for video in range(num_videos):
        task = MLVU_TASKS[video % len(MLVU_TASKS)]
        name = f"clip{video:03d}.mp4"
        write_video(root / "video" / task / name, num_frames, fps)
        for number in range(questions_per_video):
            candidates = [f"candidate {c} {number}" for c in range(4)]
            entries.setdefault(task, []).append(
                {
                    "video": name,
                    "duration": num_frames / fps,
                    "question": f"What happens in clip {video}, question {number}?",
                    "candidates": candidates,
                    "answer": candidates[int(rng.integers(4))],
                    "question_type": task.split("_", 1)[1],
                }
            )
    (root / "json").mkdir(parents=True, exist_ok=True)
    for task, task_entries in entries.items():
        (root / "json" / f"{task}.json").write_text(json.dumps(task_entries, indent=1))


def _write_longvideobench(root, rng, num_videos, questions_per_video, num_frames, fps) -> None:
    entries = []
    for video in range(num_videos):
        name = f"lvb{video:03d}.mp4"
        write_video(root / "videos" / name, num_frames, fps)
        for number in range(questions_per_video):
            candidates = [f"choice {c}" for c in range(4 + (video + number) % 2)]  # 4 or 5 options
            entries.append(
                {
                    "id": f"lvb{video:03d}_{number}",
                    "video_id": f"lvb{video:03d}",
                    "video_path": name,
                    "subtitle_path": f"lvb{video:03d}_en.json",
                    "question": f"In clip {video}, what is question {number} about?",
                    "candidates": candidates,
                    "correct_choice": int(rng.integers(len(candidates))),
                    "duration_group": LVB_GROUPS[video % len(LVB_GROUPS)],
                    "duration": num_frames / fps,
                    "question_category": ("S2E", "T3O")[number % 2],
                    "starting_timestamp_for_subtitles": 0,
                }
            )
    (root / "lvb_val.json").write_text(json.dumps(entries, indent=1))


def _write_tempcompass(root, rng, num_videos, questions_per_video, num_frames, fps) -> None:
    rows = []
    for video in range(num_videos):
        video_id = f"{1000 + video}"
        write_video(root / "videos" / f"{video_id}.mp4", num_frames, fps)
        for number in range(questions_per_video):
            options = [f"{letter}. motion {letter.lower()}" for letter in "ABC"]
            answer = options[int(rng.integers(3))]
            rows.append(
                {
                    "video_id": video_id,
                    "dim": TEMPCOMPASS_DIMS[(video + number) % len(TEMPCOMPASS_DIMS)],
                    "question": f"How does the object move in question {number}?\n" + "\n".join(options),
                    "answer": answer,
                }
            )
    _write_parquet(root / "multi-choice" / "test-00000-of-00001.parquet", rows)


LMMS_EVAL_TASK_YAML = """\
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {parquet}
task: {task}
test_split: test
output_type: generate_until
doc_to_visual: !function {module}.doc_to_visual
doc_to_text: !function {module}.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
process_results: !function {module}.process_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
"""

LMMS_EVAL_TASK_UTILS = '''\
"""lmms-eval task functions over a kit VideoMME fixture, with the kit's prompt and answer extraction."""

from evaluation.answers import extract_choice
from evaluation.benchmarks import BENCHMARKS

ROOT = {root!r}
QUESTIONS = {{question.question_id: question for question in BENCHMARKS["videomme"].read(ROOT)}}


def doc_to_visual(doc):
    return [QUESTIONS[doc["question_id"]].video_path]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return BENCHMARKS["videomme"].prompt(QUESTIONS[doc["question_id"]])


def process_results(doc, results):
    return {{"accuracy": float(extract_choice(results[0], "ABCD") == doc["answer"])}}
'''


def write_lmms_eval_task(
    task_dir: str | os.PathLike,
    fixture_root: str | os.PathLike,
    task: str = "prolongvid_tiny_videomme",
    max_new_tokens: int = 16,
) -> Path:
    """A local lmms-eval task (YAML + functions, for ``--include_path task_dir``) over a ``videomme`` fixture
    written by :func:`write_fixture`, asking the same prompts the built-in runner asks. Returns ``task_dir``."""
    task_dir, fixture_root = Path(task_dir), Path(fixture_root).resolve()
    task_dir.mkdir(parents=True, exist_ok=True)
    module = f"{task}_utils"
    parquet = next((fixture_root / "videomme").glob("test-*.parquet"))
    (task_dir / f"{task}.yaml").write_text(
        LMMS_EVAL_TASK_YAML.format(parquet=parquet, task=task, module=module, max_new_tokens=max_new_tokens)
    )
    (task_dir / f"{module}.py").write_text(LMMS_EVAL_TASK_UTILS.format(root=str(fixture_root)))
    return task_dir


__all__ = ["write_fixture", "write_lmms_eval_task", "write_video"]
