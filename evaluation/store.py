"""Append-only prediction store: a killed run resumes without repeating answered questions.

Every answer is one JSON line, fsynced before the next question starts, in ``OUT/predictions-<rank>.jsonl`` (one
file per process, so ``accelerate launch`` workers never write the same file). A line is keyed by the run's
:class:`RunSettings` (benchmark, model and its revision, frames, sampling, dtype, frame source, generation length,
prompt version) through ``settings.key``: a run only reuses lines with its own key, so a changed setting never
picks up stale answers. A torn last line (a kill mid-write) is skipped on reading.

Example:
    >>> from evaluation.store import PredictionStore, RunSettings
    >>> settings = RunSettings("videomme", "ckpt", "local:0f3a", 32, "uniform", "float16", "decode", 16)
    >>> store = PredictionStore("results/")  # doctest: +SKIP
    >>> answered = store.load(settings.key)  # {question_id: Prediction}  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

logger = logging.getLogger(__name__)

# Bump when prompts, answer extraction or sampling change, so old predictions are not reused.
PROTOCOL_VERSION = "upstream-lmms-eval-0.2.1/v1"
# How an answer is chosen: a generated reply (upstream's protocol) or option likelihood (evaluation.scoring).
SCORINGS = ("generate", "likelihood")


@dataclass(frozen=True)
class RunSettings:
    """Everything that changes a model's answers. ``sampling`` is ``"uniform"`` or ``"fps=<F>"``; ``frame_source``
    is ``"decode"`` or ``"frame-cache"``; ``subtitle_frames`` is set for videomme_w_subtitle only; ``scoring`` is
    ``"generate"`` (a greedy reply) or ``"likelihood"`` (:mod:`evaluation.scoring`)."""

    benchmark: str
    model: str
    model_revision: str
    frames: int
    sampling: str
    dtype: str
    frame_source: str
    max_new_tokens: int
    subtitle_frames: int | None = None
    protocol: str = PROTOCOL_VERSION
    scoring: str = "generate"

    @property
    def key(self) -> str:
        settings = asdict(self)
        if settings["scoring"] == "generate":  # the keys of runs from before likelihood scoring existed stay valid
            del settings["scoring"]
        encoded = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True)
class Prediction:
    """One answered (or skipped) question. ``choice`` is the extracted letter, ``None`` on a parse failure;
    ``error`` is set (and ``reply`` is ``None``) when the video could not be read; ``frames_read`` is the number of
    frames the model saw (``frames``, or fewer with fps sampling)."""

    settings_key: str
    benchmark: str
    question_id: str
    model: str
    frames: int
    sampling: str
    answer: str
    num_options: int
    reply: str | None
    choice: str | None
    correct: bool
    duration_group: str | None = None
    category: str | None = None
    error: str | None = None
    seconds: float = 0.0
    frames_read: int = 0


class PredictionStore:
    """The predictions of every run written into ``directory``; ``rank`` picks this process's file."""

    def __init__(self, directory: str | os.PathLike, rank: int = 0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"predictions-{rank}.jsonl"

    def append(self, prediction: Prediction) -> None:
        line = json.dumps(asdict(prediction), ensure_ascii=False) + "\n"
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a torn last line: start ours on a fresh line, not glued to it
                    line = "\n" + line
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def load(self, settings_key: str) -> dict[str, Prediction]:
        """The predictions (all processes' files) with this key, by question id; an answer beats a skip."""
        known = {field.name for field in fields(Prediction)}
        found: dict[str, Prediction] = {}
        for file in sorted(self.directory.glob("predictions-*.jsonl")):
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    record = json.loads(line)
                    if record.get("settings_key") != settings_key:
                        continue
                    prediction = Prediction(**{key: value for key, value in record.items() if key in known})
                except (json.JSONDecodeError, TypeError):
                    logger.warning("%s:%d: unreadable line skipped (torn write of a killed run?)", file, number)
                    continue
                previous = found.get(prediction.question_id)
                if previous is None or previous.error is not None:
                    found[prediction.question_id] = prediction
        return found


__all__ = ["PROTOCOL_VERSION", "Prediction", "PredictionStore", "RunSettings"]
