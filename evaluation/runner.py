"""The built-in runner: read a benchmark, answer every question once, score it, write a result file.

Decoding overlaps generation: a ``torch.utils.data.DataLoader`` whose worker processes read and preprocess the
next questions' frames (and subtitles) while the model answers the current one, so the GPU does not wait for the
video decoder as it does in lmms-eval's models, which decode inside ``generate_until``. Under
``accelerate launch`` each process answers every ``world_size``-th pending question into its own predictions file;
the main process then scores the union.

Example:
    >>> from evaluation.runner import EvaluationConfig, run_evaluation
    >>> config = EvaluationConfig(model="path/to/ckpt", benchmark="videomme", data="data/Video-MME",
    ...                           frames=[32, 128], out="results/stage3")
    >>> result_files = run_evaluation(config)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from .answers import extract_choice
from .benchmarks import VIDEOMME_SUBTITLE_FRAMES, Benchmark, Question, get_benchmark
from .generation import DTYPES, generate_reply, load_model_and_processor, model_revision, prepare_inputs, read_frames
from .metrics import summarize
from .scoring import option_logprobs
from .store import SCORINGS, Prediction, PredictionStore, RunSettings

logger = logging.getLogger(__name__)


class MissingVideosError(FileNotFoundError):
    """``--strict`` and some videos are missing or unreadable."""


@dataclass
class EvaluationConfig:
    """One ``python -m evaluation run`` invocation; ``frames`` is swept, one result file per value.

    ``fps=None`` samples ``frames`` frames uniformly; ``fps=F`` samples F frames per second, capped at ``frames``.
    ``num_workers`` decoding processes (0: decode in the main process, as lmms-eval does). ``limit`` answers only
    the first N questions (a smoke run). ``strict`` makes a missing or unreadable video fatal instead of skipped.
    ``max_new_tokens`` overrides the benchmark's generation length (part of the settings, so never mixed).
    ``scoring="likelihood"`` chooses the option the model finds most likely as its reply instead of generating one
    (:mod:`evaluation.scoring`); its result files are named ``...-likelihood-<key>.json``.
    """

    model: str
    benchmark: str
    data: str | os.PathLike
    out: str | os.PathLike
    frames: list[int] = field(default_factory=lambda: [32])
    fps: float | None = None
    dtype: str = "float16"
    frame_cache: str | os.PathLike | None = None
    limit: int | None = None
    strict: bool = False
    num_workers: int = 2
    device: str | None = None
    subtitle_frames: int = VIDEOMME_SUBTITLE_FRAMES
    max_new_tokens: int | None = None
    scoring: str = "generate"


def kit_version() -> str:
    try:
        return version("prolongvid")
    except PackageNotFoundError:
        return "unknown (not installed)"


def result_path(out: str | os.PathLike, settings: RunSettings) -> Path:
    sampling = settings.sampling.replace("=", "")
    scoring = "" if settings.scoring == "generate" else f"-{settings.scoring}"
    return Path(out) / f"results-{settings.benchmark}-{settings.frames}f-{sampling}{scoring}-{settings.key}.json"


class _Distributed:
    """Rank, world size, device and barrier: accelerate's when launched with several processes."""

    def __init__(self, device: str | None):
        self.state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            self.state = PartialState(cpu=not torch.cuda.is_available())  # CPU: gloo processes
        self.rank = self.state.process_index if self.state else 0
        self.world_size = self.state.num_processes if self.state else 1
        default = self.state.device if self.state else ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(device) if device else torch.device(default)
        self.is_main = self.rank == 0

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def close(self) -> None:
        if self.state is not None and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # a clean exit: without it gloo ranks may abort at exit


class QuestionDataset(torch.utils.data.Dataset):
    """Items ``{"position", "inputs", "error", "decode_seconds", "frames"}``: a question's model inputs (frames read and
    preprocessed, prompt templated), or the reason its video could not be read."""

    def __init__(self, questions, benchmark: Benchmark, processor, config: EvaluationConfig, frames: int, dtype):
        self.questions, self.benchmark, self.processor = questions, benchmark, processor
        self.config, self.frames, self.dtype = config, frames, dtype
        self._cache = None

    def __len__(self) -> int:
        return len(self.questions)

    def _frame_cache(self):
        if self.config.frame_cache is not None and self._cache is None:
            from processing.frame_cache import FrameCache

            self._cache = FrameCache(self.config.frame_cache)
        return self._cache

    def __getitem__(self, position: int) -> dict:
        from processing import VideoReadError

        question = self.questions[position]
        start = time.perf_counter()
        try:
            frames, _ = read_frames(
                question.video_path, self.frames, self.config.fps, self._frame_cache(), question.video_id
            )
            subtitles = self._subtitles(question) if self.benchmark.uses_subtitles else None
        except (VideoReadError, OSError, ValueError) as error:
            return {"position": position, "inputs": None, "error": f"{type(error).__name__}: {error}"}
        text = self.benchmark.prompt(question, subtitles)
        inputs = prepare_inputs(self.processor, frames, text, self.dtype)
        seconds = time.perf_counter() - start
        return {
            "position": position,
            "inputs": inputs,
            "error": None,
            "decode_seconds": seconds,
            "frames": len(frames),
        }

    def _subtitles(self, question: Question) -> str | None:
        from processing import probe_video

        from .subtitles import parse_srt, subtitles_at_frames

        if question.subtitle_path is None or not Path(question.subtitle_path).is_file():
            return None
        info = probe_video(question.video_path)
        cues = parse_srt(Path(question.subtitle_path).read_text(encoding="utf-8", errors="replace"))
        return subtitles_at_frames(cues, info.num_frames, info.fps, self.config.subtitle_frames)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with generation for cores


def run_evaluation(config: EvaluationConfig) -> list[Path]:
    """Answer and score ``config.benchmark`` at each frame count of ``config.frames``; returns the result files
    (written by the main process; other processes return an empty list)."""
    benchmark = get_benchmark(config.benchmark)
    if config.fps is not None and config.fps <= 0:
        raise ValueError(f"--fps must be positive, got {config.fps}")
    if config.scoring not in SCORINGS:
        raise ValueError(f"scoring={config.scoring!r}; use one of {SCORINGS}.")
    if not config.frames or min(config.frames) < 1:
        raise ValueError(f"--frames must be positive frame counts, got {config.frames}")
    questions = benchmark.read(config.data)
    if config.limit is not None:
        questions = questions[: config.limit]
    missing = {q.question_id: f"missing video {q.video_path}" for q in questions if not Path(q.video_path).is_file()}
    if missing:
        videos = sorted({q.video_path for q in questions if q.question_id in missing})
        listing = "\n  ".join(videos[:20]) + ("\n  ..." if len(videos) > 20 else "")
        if config.strict:
            raise MissingVideosError(
                f"{len(videos)} video(s) of {benchmark.name} missing ({len(missing)} questions):\n  {listing}\n"
                "Download them into the layout given by `python -m evaluation run --help`, or drop --strict to "
                "skip (and count) their questions."
            )
        logger.warning("%d videos missing, %d questions skipped:\n  %s", len(videos), len(missing), listing)

    distributed = _Distributed(config.device)
    model, processor = load_model_and_processor(config.model, config.dtype, distributed.device)
    revision = model_revision(config.model)
    store = PredictionStore(config.out, distributed.rank)
    written = []
    for frames in config.frames:
        settings = RunSettings(
            benchmark=benchmark.name,
            model=config.model,
            model_revision=revision,
            frames=frames,
            sampling="uniform" if config.fps is None else f"fps={config.fps:g}",
            dtype=config.dtype,
            frame_source="decode" if config.frame_cache is None else "frame-cache",
            max_new_tokens=config.max_new_tokens or benchmark.max_new_tokens,
            subtitle_frames=config.subtitle_frames if benchmark.uses_subtitles else None,
            scoring=config.scoring,
        )
        started = time.perf_counter()
        done = store.load(settings.key)
        pending = [q for q in questions if q.question_id not in missing and not _answered(done.get(q.question_id))]
        mine = pending[distributed.rank :: distributed.world_size]
        if distributed.is_main:
            logger.info(
                "%s at %d frames: %d questions, %d already answered, %d to answer over %d process(es)",
                benchmark.name,
                frames,
                len(questions),
                len(questions) - len(pending) - len(missing),
                len(pending),
                distributed.world_size,
            )
        _answer(mine, benchmark, model, processor, config, frames, settings, store)
        distributed.wait()
        if distributed.is_main:
            written.append(_write_result(config, benchmark, settings, questions, missing, store, started))
        distributed.wait()
    distributed.close()
    return written


def _answered(prediction: Prediction | None) -> bool:
    return prediction is not None and prediction.error is None


def _answer(questions, benchmark, model, processor, config, frames, settings, store) -> None:
    from tqdm.auto import tqdm

    dataset = QuestionDataset(questions, benchmark, processor, config, frames, DTYPES[config.dtype])
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=config.num_workers,
        worker_init_fn=_worker_init if config.num_workers else None,
        prefetch_factor=2 if config.num_workers else None,
    )
    for item in tqdm(loader, total=len(dataset), desc=f"{benchmark.name} {frames}f", disable=not questions):
        question = questions[item["position"]]
        common = dict(
            settings_key=settings.key,
            benchmark=benchmark.name,
            question_id=question.question_id,
            model=config.model,
            frames=frames,
            sampling=settings.sampling,
            answer=question.answer,
            num_options=len(question.options),
            duration_group=question.duration_group,
            category=question.category,
        )
        if item["error"] is not None:
            if config.strict:
                raise MissingVideosError(f"{question.video_path}: {item['error']} (drop --strict to skip it)")
            logger.warning("question %s skipped: %s", question.question_id, item["error"])
            store.append(Prediction(**common, reply=None, choice=None, correct=False, error=item["error"]))
            continue
        start = time.perf_counter()
        if settings.scoring == "likelihood":
            scores = option_logprobs(model, processor, item["inputs"], list(question.option_texts))
            best = max(range(len(scores)), key=scores.__getitem__)
            reply, choice = question.option_texts[best], question.letters[best]
        else:
            reply = generate_reply(model, processor, item["inputs"], settings.max_new_tokens)
            choice = extract_choice(reply, question.letters, question.option_texts)
        store.append(
            Prediction(
                **common,
                reply=reply,
                choice=choice,
                correct=choice == question.answer,
                seconds=round(time.perf_counter() - start + item["decode_seconds"], 4),
                frames_read=item["frames"],
            )
        )


def _write_result(config, benchmark, settings, questions, missing, store, started) -> Path:
    found = store.load(settings.key)
    predictions = [found[q.question_id] for q in questions if q.question_id in found and q.question_id not in missing]
    summary = summarize(benchmark.name, predictions)
    summary["skipped"].update(missing)
    summary["questions"] = len(questions)
    sampling_rule = (
        f"np.linspace(0, total_frames - 1, {settings.frames}, dtype=int) over native frames"
        if config.fps is None
        else f"every round(avg_fps / {config.fps:g})-th native frame, {settings.frames} uniform frames when more"
    )
    result = {
        "benchmark": benchmark.name,
        "title": benchmark.title,
        "model": config.model,
        "model_revision": settings.model_revision,
        "kit_version": kit_version(),
        "frames": settings.frames,
        "sampling": settings.sampling,
        "protocol": {
            **asdict(settings),
            "sampling_rule": sampling_rule,
            "preprocessing": "the checkpoint's processor (resize to the vision tower's size, mean = std = 0.5)",
            "prompt": "qwen_1_5 ChatML, default system prompt, video first in the user turn, no time instruction",
            "decoding": (
                f"greedy (do_sample=False, num_beams=1), max_new_tokens={settings.max_new_tokens}"
                if settings.scoring == "generate"
                else "none: every option's text + <|im_end|> scored as the reply (summed log-probability)"
            ),
            "prompt_strings": "lmms-eval 0.2.1 task definitions as copied in ruiwang2021/ProLongVid",
            "answer_extraction": (
                "evaluation.answers.extract_choice; a parse failure counts as wrong"
                if settings.scoring == "generate"
                else "evaluation.scoring: the option of the highest log-likelihood (never a parse failure)"
            ),
        },
        "wall_seconds": round(time.perf_counter() - started, 2),
        "generation_seconds": round(sum(p.seconds for p in predictions), 2),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings_key": settings.key,
        "metrics": summary,
    }
    path = result_path(config.out, settings)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    headline = summary["headline"]
    logger.info(
        "%s %d frames: %s (%d answered, %d parse failures, %d skipped) -> %s",
        benchmark.title,
        settings.frames,
        "n/a" if headline is None else f"{headline:.1f}",
        summary["answered"],
        summary["parse_failures"],
        len(summary["skipped"]),
        path,
    )
    return path


__all__ = ["EvaluationConfig", "MissingVideosError", "QuestionDataset", "kit_version", "run_evaluation"]
