"""What an import is asked to do (``ImportSettings``, validated) and what it did (``ImportSummary``).

>>> ImportSettings("rows.json", media_root="videos", out="data").configs()
('stage1', 'stage2', 'stage3')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..schemas import IMAGE_CONFIGS, STAGE_BOUNDS
from .media import PROBE_MODES

MODALITIES = ("video", "image")


@dataclass(frozen=True)
class ImportSettings:
    """What to import and how (the ``import`` sub-command's options).

    Args:
        annotations: an annotation file (``.json`` array, ``.jsonl``, ``.parquet``) or a directory of them.
        media_root: the directory that the rows' ``video`` / ``image`` paths are relative to.
        out: the dataset folder (created; a re-run with the same inputs resumes it).
        modality: ``video`` (configs stage1/2/3 by duration) or ``image`` (one config, ``image_config``).
        source: the ``source`` of every row; default: the row's ``data_source``, else the annotation file's name.
        image_config: the config image rows go to: one of ``IMAGE_CONFIGS``.
        probe: ``header`` (container header) or ``full`` (demux every packet; also catches truncated files).
        workers: probes in flight.
        chunk_rows: rows per resumable chunk.
        progress: show a progress bar on stderr.
        restart: discard an earlier import into ``out`` (needed when its inputs or settings differ) and start over.
    """

    annotations: str | Path
    media_root: str | Path
    out: str | Path
    modality: str = "video"
    source: str | None = None
    image_config: str = "image_sft"
    probe: str = "header"
    workers: int = 16
    chunk_rows: int = 10_000
    progress: bool = True
    restart: bool = False

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality={self.modality!r}; use one of {MODALITIES}.")
        if self.image_config not in IMAGE_CONFIGS:
            raise ValueError(f"image_config={self.image_config!r}; use one of {IMAGE_CONFIGS}.")
        if self.probe not in PROBE_MODES:
            raise ValueError(f"probe={self.probe!r}; use one of {PROBE_MODES}.")
        if self.workers < 1 or self.chunk_rows < 1:
            raise ValueError(f"workers and chunk_rows must be >= 1, got {self.workers} and {self.chunk_rows}.")

    def configs(self) -> tuple[str, ...]:
        """The configs this import can write."""
        return tuple(STAGE_BOUNDS) if self.modality == "video" else (self.image_config,)


@dataclass
class ImportSummary:
    """What an import did (over all its runs, when it was resumed).

    ``written``: training rows per config; ``skipped``: rows left out per kind of problem (each is in
    ``errors_path``); ``normalized``: rows whose placeholder was glued to its text (see ``conversations``);
    ``media``: ``{video id: [duration, source, words of the longest answer]}`` of every usable video; ``images``:
    usable images (counted per chunk: an image repeated in two chunks counts twice);
    ``sources``: training rows per source; ``probed``: files this run opened (cache misses); ``resumed_chunks``:
    chunks found finished when this run started.
    """

    rows: int = 0
    written: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    normalized: int = 0
    media: dict = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)
    images: int = 0
    probed: int = 0
    resumed_chunks: int = 0
    errors_path: Path | None = None
    data_files: dict = field(default_factory=dict)

    def add(self, record: dict) -> None:
        """Fold in one chunk's progress record."""
        self.rows += record["rows_read"]
        self.written.update(record["written"])
        self.skipped.update(record["skipped"])
        self.normalized += record["normalized"]
        self.sources.update(record["sources"])
        self.images += record["images"]
        for key, (duration, source, words) in record["media"].items():
            known = self.media.setdefault(key, [duration, source, words])
            known[2] = max(known[2], words)
