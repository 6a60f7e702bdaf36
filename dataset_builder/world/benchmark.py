"""The world's held-out multiple-choice benchmark, written in Video-MME's published layout so the evaluation harness
reads it as ``--benchmark world``:

    DIR/videomme/test-00000.parquet   video_id, duration (short/medium/long), domain ("world"), sub_category (the
                                      band's seconds), videoID, question_id, task_type (the family), question,
                                      options ("A. navy", ...), answer (a letter)
    DIR/data/<videoID>.mp4            the world videos
    DIR/timelines.jsonl               every video's ground truth (for reports and tests)

Benchmark videos use seeds from :data:`BENCHMARK_SEED_OFFSET` up; training videos (:func:`write_videos`) use seeds
below it, so the two never share a video. Each video contributes at most ``questions_per_family`` questions of every
family it supports; the ``needle`` family is asked about long videos only (:data:`NEEDLE_BANDS`: medium videos hold
a flash too, for training, but a needle in a haystack is a long video's); chance is 25%.

Example:
    >>> import tempfile
    >>> from dataset_builder.world.benchmark import write_benchmark
    >>> from evaluation.benchmarks import get_benchmark
    >>> folder = write_benchmark(tempfile.mkdtemp(), videos_per_band={"short": 2, "medium": 1, "long": 1})
    >>> questions = get_benchmark("world").read(folder)
    >>> sorted({q.duration_group for q in questions}), "needle" in {q.category for q in questions}
    (['long', 'medium', 'short'], True)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .questions import FAMILIES, LETTERS, multiple_choice
from .render import write_world_video
from .timeline import BANDS, Timeline, sample_timeline

BENCHMARK_SEED_OFFSET = 1_000_000
DEFAULT_VIDEOS_PER_BAND = {"short": 40, "medium": 30, "long": 30}
NEEDLE_BANDS = ("long",)


def video_id(timeline: Timeline) -> str:
    return f"world-{timeline.band}-{timeline.seed:07d}"


def write_videos(folder: str | Path, videos_per_band: dict[str, int], first_seed: int = 0) -> list[Timeline]:
    """Write ``videos_per_band[band]`` world videos per band into ``folder`` (``<video id>.mp4``) and their ground
    truth into ``folder/timelines.jsonl``; returns the timelines. Existing files are kept (a re-run resumes); world
    videos that are not in this set (of an earlier, larger run) are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    timelines = []
    for band, count in videos_per_band.items():
        if band not in BANDS:
            raise ValueError(f"Unknown duration band {band!r}; the world's bands are {list(BANDS)}.")
        for index in range(count):
            timeline = sample_timeline(first_seed + index, band)
            path = folder / f"{video_id(timeline)}.mp4"
            if not path.is_file():
                partial = path.with_suffix(".partial.mp4")
                write_world_video(partial, timeline)
                partial.replace(path)
            timelines.append(timeline)
    wanted = {f"{video_id(timeline)}.mp4" for timeline in timelines}
    for stale in folder.glob("world-*.mp4"):  # of an earlier, larger run: the folder holds exactly these videos
        if stale.name not in wanted:
            stale.unlink()
    with open(folder / "timelines.jsonl", "w") as handle:
        for timeline in timelines:
            handle.write(json.dumps({"video_id": video_id(timeline), **asdict(timeline)}) + "\n")
    return timelines


def benchmark_rows(timelines: list[Timeline], questions_per_family: int = 1, seed: int = 0) -> list[dict]:
    """Video-MME rows (see module docstring): per video, up to ``questions_per_family`` questions of each family,
    drawn by ``seed``."""
    rows = []
    for timeline in timelines:
        rng = np.random.default_rng([seed, timeline.seed])
        questions = multiple_choice(timeline, seed=seed)
        for family in FAMILIES:
            if family == "needle" and timeline.band not in NEEDLE_BANDS:
                continue
            candidates = [q for q in questions if q.family == family]
            picked = rng.choice(len(candidates), size=min(questions_per_family, len(candidates)), replace=False)
            for number, index in enumerate(sorted(picked)):
                question = candidates[int(index)]
                low, high = BANDS[timeline.band]
                rows.append(
                    {
                        "video_id": video_id(timeline),
                        "duration": timeline.band,
                        "domain": "world",
                        "sub_category": f"{low:.0f}-{high:.0f}s",
                        "videoID": video_id(timeline),
                        "question_id": f"{video_id(timeline)}-{family}-{number}",
                        "task_type": family,
                        "question": question.question,
                        "options": [f"{letter}. {text}" for letter, text in zip(LETTERS, question.options)],
                        "answer": question.answer,
                    }
                )
    return rows


def write_benchmark(
    folder: str | Path,
    videos_per_band: dict[str, int] | None = None,
    questions_per_family: int = 1,
    seed: int = 0,
) -> Path:
    """Write the held-out benchmark (videos, questions, ground truth) into ``folder``; returns it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    timelines = write_videos(folder / "data", videos_per_band or DEFAULT_VIDEOS_PER_BAND, BENCHMARK_SEED_OFFSET)
    (folder / "data" / "timelines.jsonl").replace(folder / "timelines.jsonl")
    rows = benchmark_rows(timelines, questions_per_family, seed)
    (folder / "videomme").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "videomme" / "test-00000.parquet")
    return folder
