"""The paper's benchmarks: readers of the layouts their authors publish, and the prompts upstream evaluated with.

Each benchmark is a :class:`Benchmark`: a reader turning the downloaded folder into :class:`Question` records
(schema checked up front, with an error naming the file, the missing fields and the expected layout) and a prompt
builder using the strings of lmms-eval's task definitions as the ProLongVid authors ran them (the lmms-eval 0.2.1
copy in ``ruiwang2021/ProLongVid``; where lmms-eval 0.7.3 differs, both are quoted).

Layouts (``--data DIR``):

- ``videomme`` / ``videomme_w_subtitle`` (lmms-lab/Video-MME): ``DIR/videomme/test-*.parquet`` with columns
  ``video_id, duration, domain, sub_category, videoID, question_id, task_type, question, options, answer``;
  videos ``DIR/data/<videoID>.mp4`` (or ``.MP4`` / ``.mkv``); subtitles ``DIR/subtitle/<videoID>.srt``.
- ``mlvu_dev`` (MVLU/MLVU): ``DIR/json/<n>_<task>.json`` (lists of ``video, duration, question, candidates,
  answer, question_type``), videos ``DIR/video/<n>_<task>/<video>``; multiple-choice tasks 1-7.
- ``longvideobench_val`` (longvideobench/LongVideoBench): ``DIR/lvb_val.json`` (list of ``id, video_path,
  question, candidates, correct_choice, duration_group, question_category``), videos ``DIR/videos/<video_path>``.
- ``world`` (the kit's synthetic world, ``dataset_builder.world.benchmark``): the Video-MME layout, ``duration`` is
  the band (short/medium/long) and ``task_type`` the task family.
- ``tempcompass_mc`` (lmms-lab/TempCompass, multi-choice config): ``DIR/multi-choice/*.parquet`` with columns
  ``video_id, dim, question, answer``; videos ``DIR/videos/<video_id>.mp4``.

Example:
    >>> from evaluation.benchmarks import BENCHMARKS
    >>> questions = BENCHMARKS["videomme"].read("data/Video-MME")  # doctest: +SKIP
    >>> print(BENCHMARKS["videomme"].prompt(questions[0]))  # doctest: +SKIP
    Select the best answer to the following multiple-choice question based on the video and the subtitles. ...
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# lmms-eval 0.7.3 and 0.2.1 (ProLongVid copy), tasks/videomme/utils.py, videomme_doc_to_text[_subtitle].
VIDEOMME_OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)
# lmms-eval 0.7.3 and 0.2.1, tasks/videomme/videomme.yaml, lmms_eval_specific_kwargs.default.post_prompt.
VIDEOMME_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
# lmms-eval 0.7.3 and 0.2.1, videomme_doc_to_text_subtitle (its post-prompt is fixed, the YAML's is unused).
VIDEOMME_SUBTITLES_PROMPT = "This video's subtitles are listed below: \n"
VIDEOMME_NO_SUBTITLES = "No subtitles available"
VIDEOMME_SUBTITLE_POST_PROMPT = "The best answer is:"
# lmms-eval 0.2.1 (ProLongVid copy), tasks/videomme/videomme_w_subtitle.yaml, default.frame_num (0.7.3: 32).
VIDEOMME_SUBTITLE_FRAMES = 768
# lmms-eval 0.2.1 (ProLongVid copy), tasks/mlvu/utils.py, mlvu_doc_to_text: "\n" + question + this.
# (lmms-eval 0.7.3, mlvu_dev.yaml: question + "\nOnly give the best option.\nBest option: (".)
MLVU_POST_PROMPT = "\nOnly give the best option.\n"
# lmms-eval 0.7.3 and 0.2.1, tasks/longvideobench/longvideobench_val_v.yaml, default.post_prompt.
LONGVIDEOBENCH_POST_PROMPT = "Answer with the option's letter from the given choices directly.\n"
# lmms-eval 0.7.3 and 0.2.1, tasks/tempcompass/_default_template_yaml, default.post_prompt["multi-choice"].
TEMPCOMPASS_MC_POST_PROMPT = "\nPlease directly give the best option:"
# LongVideoBench duration groups (seconds, the benchmark's `duration_group`) as the paper names them.
LONGVIDEOBENCH_DURATIONS = {"15": "8-15s", "60": "15-60s", "600": "180-600s", "3600": "900-3600s"}
VIDEOMME_DURATIONS = ("short", "medium", "long")
# The synthetic world's benchmark (dataset_builder.world.benchmark): the question, its lettered options, this line
# (the world model answers with the option's text, which extract_choice maps to its letter).
WORLD_POST_PROMPT = "Answer with the best option."
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv")


class BenchmarkDataError(ValueError):
    """A benchmark folder that does not have the published layout or schema; the message says what to fix."""


@dataclass(frozen=True)
class Question:
    """One multiple-choice question about one video.

    ``options`` are the option lines as the prompt shows them (``"A. a dog"``); ``answer`` is the correct letter;
    ``duration_group`` is VideoMME's short/medium/long or LongVideoBench's group (``"600"``), else ``None``;
    ``category`` is the task type / question category the per-category table groups by.
    """

    benchmark: str
    question_id: str
    video_id: str
    video_path: str
    question: str
    options: tuple[str, ...]
    answer: str
    duration_group: str | None = None
    category: str | None = None
    subtitle_path: str | None = None

    @property
    def letters(self) -> str:
        return "".join(chr(ord("A") + i) for i in range(len(self.options)))

    @property
    def option_texts(self) -> tuple[str, ...]:
        """The options without their ``"A. "`` / ``"(A) "`` labels."""
        return tuple(re.sub(r"^\(?[A-Z][.)]\s*", "", option) for option in self.options)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: its reader, prompt builder and generation length (``max_new_tokens`` as its task sets it)."""

    name: str
    title: str
    layout: str
    max_new_tokens: int
    read: Callable[[str | os.PathLike], list[Question]]
    build_prompt: Callable[[Question, str | None], str]
    uses_subtitles: bool = False

    def prompt(self, question: Question, subtitles: str | None = None) -> str:
        """The user-turn text for ``question``; ``subtitles`` (videomme_w_subtitle only) are the cue lines, or
        ``None`` when the video has no subtitle file."""
        return self.build_prompt(question, subtitles)


# --- readers -------------------------------------------------------------------------------------------------


def _read_parquet_rows(files: list[Path], required: tuple[str, ...], layout: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for file in files:
        table = pq.read_table(file)
        missing = [column for column in required if column not in table.column_names]
        if missing:
            raise BenchmarkDataError(
                f"{file}: missing columns {missing} (has {table.column_names}). Expected layout: {layout}"
            )
        rows.extend(table.to_pylist())
    return rows


def _read_json_list(file: Path, required: tuple[str, ...], layout: str) -> list[dict]:
    try:
        entries = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise BenchmarkDataError(f"{file}: not valid JSON ({error}). Expected layout: {layout}") from None
    if not isinstance(entries, list):
        raise BenchmarkDataError(f"{file}: expected a JSON list of questions, got {type(entries).__name__}")
    for number, entry in enumerate(entries):
        missing = [key for key in required if key not in entry]
        if missing:
            raise BenchmarkDataError(
                f"{file}: entry {number} lacks {missing} (has {sorted(entry)}). Expected layout: {layout}"
            )
    return entries


def _annotation_files(root: Path, pattern: str, layout: str) -> list[Path]:
    if not root.is_dir():
        raise BenchmarkDataError(f"{root} is not a directory. Expected layout: {layout}")
    files = sorted(root.glob(pattern))
    if not files:
        raise BenchmarkDataError(f"{root}: no annotation file matches {pattern!r}. Expected layout: {layout}")
    return files


def _video_file(folder: Path, stem: str) -> Path:
    """``folder/stem.mp4``, else the first of ``.MP4`` / ``.mkv`` that exists (as lmms-eval looks them up)."""
    for suffix in VIDEO_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return folder / f"{stem}{VIDEO_SUFFIXES[0]}"


def _check_answer(source: str, answer: str, letters: str) -> str:
    if answer not in letters:
        raise BenchmarkDataError(f"{source}: answer {answer!r} is not one of the option letters {list(letters)}")
    return answer


VIDEOMME_LAYOUT = (
    "DIR/videomme/test-*.parquet (video_id, duration, domain, sub_category, videoID, question_id, task_type, "
    "question, options, answer), DIR/data/<videoID>.mp4, DIR/subtitle/<videoID>.srt"
)


def read_videomme(root: str | os.PathLike, benchmark: str = "videomme") -> list[Question]:
    root = Path(root)
    required = ("video_id", "duration", "domain", "sub_category", "videoID", "question_id", "task_type")
    required += ("question", "options", "answer")
    files = _annotation_files(root, "videomme/test-*.parquet", VIDEOMME_LAYOUT)
    rows = _read_parquet_rows(files, required, VIDEOMME_LAYOUT)
    questions = []
    for row in rows:
        options = tuple(row["options"])
        letters = "".join(chr(ord("A") + i) for i in range(len(options)))
        if row["duration"] not in VIDEOMME_DURATIONS:
            raise BenchmarkDataError(
                f"VideoMME question {row['question_id']}: duration {row['duration']!r} is not one of "
                f"{VIDEOMME_DURATIONS}"
            )
        questions.append(
            Question(
                benchmark=benchmark,
                question_id=str(row["question_id"]),
                video_id=row["videoID"],
                video_path=str(_video_file(root / "data", row["videoID"])),
                question=row["question"],
                options=options,
                answer=_check_answer(f"VideoMME question {row['question_id']}", row["answer"], letters),
                duration_group=row["duration"],
                category=row["task_type"],
                subtitle_path=str(root / "subtitle" / f"{row['videoID']}.srt"),
            )
        )
    return questions


def prompt_videomme(question: Question, subtitles: str | None = None) -> str:
    body = VIDEOMME_OPTION_PROMPT + "\n" + question.question + "\n" + "\n".join(question.options)
    return body + "\n" + VIDEOMME_POST_PROMPT


def prompt_videomme_subtitles(question: Question, subtitles: str | None) -> str:
    subtitle_text = VIDEOMME_NO_SUBTITLES if subtitles is None else subtitles
    body = VIDEOMME_OPTION_PROMPT + "\n" + question.question + "\n" + "\n".join(question.options)
    return VIDEOMME_SUBTITLES_PROMPT + subtitle_text + "\n" + body + "\n" + VIDEOMME_SUBTITLE_POST_PROMPT


def prompt_world(question: Question, subtitles: str | None = None) -> str:
    return question.question + "\n" + "\n".join(question.options) + "\n" + WORLD_POST_PROMPT


MLVU_LAYOUT = (
    "DIR/json/<n>_<task>.json (lists of video, duration, question, candidates, answer, question_type), "
    "DIR/video/<n>_<task>/<video>"
)
# The multiple-choice tasks of MLVU dev (M-Avg is their mean); 8_sub_scene and 9_summary are open-ended.
MLVU_MULTIPLE_CHOICE = ("1_plotQA", "2_needle", "3_ego", "4_count", "5_order", "6_anomaly_reco", "7_topic_reasoning")


def read_mlvu(root: str | os.PathLike) -> list[Question]:
    root = Path(root)
    files = [f for f in _annotation_files(root, "json/*.json", MLVU_LAYOUT) if f.stem in MLVU_MULTIPLE_CHOICE]
    if not files:
        raise BenchmarkDataError(f"{root}/json holds none of {MLVU_MULTIPLE_CHOICE}. Expected layout: {MLVU_LAYOUT}")
    questions = []
    for file in files:
        required = ("video", "question", "candidates", "answer", "question_type")
        for number, entry in enumerate(_read_json_list(file, required, MLVU_LAYOUT)):
            candidates = list(entry["candidates"])
            if entry["answer"] not in candidates:
                raise BenchmarkDataError(f"{file}: entry {number}: answer {entry['answer']!r} is not a candidate")
            options = tuple(f"({chr(ord('A') + i)}) {candidate}" for i, candidate in enumerate(candidates))
            questions.append(
                Question(
                    benchmark="mlvu_dev",
                    question_id=f"{file.stem}/{number}",
                    video_id=Path(entry["video"]).stem,
                    video_path=str(root / "video" / file.stem / entry["video"]),
                    # The question field of lmms-eval's MLVU_dev (sy1998/MLVU_dev), built from the authors' JSON:
                    # the question, then one "(A) option" line per candidate (the format MLVU's own scripts use;
                    # not checked against that parquet, which is not readable here).
                    question=entry["question"] + "\n" + "\n".join(options),
                    options=options,
                    answer=chr(ord("A") + candidates.index(entry["answer"])),
                    category=entry["question_type"],
                )
            )
    return questions


def prompt_mlvu(question: Question, subtitles: str | None = None) -> str:
    return "\n" + question.question + MLVU_POST_PROMPT


LONGVIDEOBENCH_LAYOUT = (
    "DIR/lvb_val.json (list of id, video_path, question, candidates, correct_choice, duration_group, "
    "question_category), DIR/videos/<video_path>"
)


def read_longvideobench(root: str | os.PathLike) -> list[Question]:
    root = Path(root)
    file = _annotation_files(root, "lvb_val.json", LONGVIDEOBENCH_LAYOUT)[0]
    required = ("id", "video_path", "question", "candidates", "correct_choice", "duration_group")
    required += ("question_category",)
    questions = []
    for entry in _read_json_list(file, required, LONGVIDEOBENCH_LAYOUT):
        candidates = list(entry["candidates"])
        if not 0 <= int(entry["correct_choice"]) < len(candidates):
            raise BenchmarkDataError(f"{file}: {entry['id']}: correct_choice {entry['correct_choice']} out of range")
        group = str(entry["duration_group"])
        if group not in LONGVIDEOBENCH_DURATIONS:
            raise BenchmarkDataError(
                f"{file}: {entry['id']}: duration_group {group} is not one of {list(LONGVIDEOBENCH_DURATIONS)}"
            )
        questions.append(
            Question(
                benchmark="longvideobench_val",
                question_id=str(entry["id"]),
                video_id=Path(entry["video_path"]).stem,
                video_path=str(root / "videos" / entry["video_path"]),
                question=entry["question"],
                options=tuple(f"{chr(ord('A') + i)}. {candidate}" for i, candidate in enumerate(candidates)),
                answer=chr(ord("A") + int(entry["correct_choice"])),
                duration_group=group,
                category=entry["question_category"],
            )
        )
    return questions


def prompt_longvideobench(question: Question, subtitles: str | None = None) -> str:
    # lmms-eval 0.7.3 and 0.2.1, longvideobench_doc_to_text: f"{pre_prompt}{question}\n{post_prompt}".
    return question.question + "\n" + "\n".join(question.options) + "\n" + LONGVIDEOBENCH_POST_PROMPT


TEMPCOMPASS_LAYOUT = "DIR/multi-choice/*.parquet (video_id, dim, question, answer), DIR/videos/<video_id>.mp4"
_OPTION_LINE = re.compile(r"^([A-Z])\. .*$", re.MULTILINE)


def read_tempcompass(root: str | os.PathLike) -> list[Question]:
    root = Path(root)
    files = _annotation_files(root, "multi-choice/*.parquet", TEMPCOMPASS_LAYOUT)
    rows = _read_parquet_rows(files, ("video_id", "dim", "question", "answer"), TEMPCOMPASS_LAYOUT)
    questions = []
    for number, row in enumerate(rows):
        options = tuple(match.group(0) for match in _OPTION_LINE.finditer(row["question"]))
        letters = "".join(chr(ord("A") + i) for i in range(len(options)))
        if not options:
            raise BenchmarkDataError(f"TempCompass row {number}: no 'A. ...' option lines in {row['question']!r}")
        questions.append(
            Question(
                benchmark="tempcompass_mc",
                question_id=f"{row['video_id']}/{row['dim']}/{number}",
                video_id=str(row["video_id"]),
                video_path=str(root / "videos" / f"{row['video_id']}.mp4"),
                question=row["question"],
                options=options,
                answer=_check_answer(f"TempCompass row {number}", row["answer"][:1], letters),
                category=row["dim"],
            )
        )
    return questions


def prompt_tempcompass(question: Question, subtitles: str | None = None) -> str:
    return question.question + TEMPCOMPASS_MC_POST_PROMPT


BENCHMARKS: dict[str, Benchmark] = {
    "videomme": Benchmark("videomme", "VideoMME w/o subs", VIDEOMME_LAYOUT, 16, read_videomme, prompt_videomme),
    "videomme_w_subtitle": Benchmark(
        "videomme_w_subtitle",
        "VideoMME w/ subs",
        VIDEOMME_LAYOUT,
        16,
        lambda root: read_videomme(root, "videomme_w_subtitle"),
        prompt_videomme_subtitles,
        uses_subtitles=True,
    ),
    # The synthetic world's held-out benchmark (Video-MME layout; duration = band, task_type = task family).
    "world": Benchmark(
        "world", "Synthetic world MC", VIDEOMME_LAYOUT, 16, lambda root: read_videomme(root, "world"), prompt_world
    ),
    "mlvu_dev": Benchmark("mlvu_dev", "MLVU M-Avg", MLVU_LAYOUT, 16, read_mlvu, prompt_mlvu),
    "longvideobench_val": Benchmark(
        "longvideobench_val",
        "LongVideoBench val",
        LONGVIDEOBENCH_LAYOUT,
        32,
        read_longvideobench,
        prompt_longvideobench,
    ),
    # The task sets no max_new_tokens: upstream's llava_onevision wrapper then generates up to 1024.
    "tempcompass_mc": Benchmark(
        "tempcompass_mc", "TempCompass MC", TEMPCOMPASS_LAYOUT, 1024, read_tempcompass, prompt_tempcompass
    ),
}


def get_benchmark(name: str) -> Benchmark:
    """The :class:`Benchmark` called ``name``; the error lists the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkDataError", "Question", "get_benchmark"]
