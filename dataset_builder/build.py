"""``build``: turn a work dir's annotations into Parquet configs, a dataset card with plots, and (optionally) a Hub repo.

Output layout (``load_dataset(DATASET_DIR, "stage1")`` reads it through the card's YAML ``configs:``)::

    DATASET_DIR/captions/train-<hash>.parquet   CAPTIONS_FEATURES, one row per video
    DATASET_DIR/qa/train-<hash>.parquet         QA_FEATURES, one row per question
    DATASET_DIR/stage{1,2,3}/train-<hash>.parquet  TRAINING_FEATURES (team contract "Training rows")
    DATASET_DIR/plots/*.png, DATASET_DIR/README.md
    DATASET_DIR/frame_cache/                            the annotator's frame cache (video_id -> cached frames)

``<hash>`` is the file's content hash and the card names each file exactly: datasets 5.x caches a local folder by its
name and its ``data_files`` patterns, not by content, so a rebuild into the same folder must change them to be read
fresh by ``load_dataset(DATASET_DIR, config)``; each build removes the files of the one before.

Training rows: one per QA pair plus one dense-caption row per video ("Describe this video in detail."), in the
contract's chat format with the video item first in the user turn. With ``turns_per_row=N`` (``--turns-per-row``) a
video's QA pairs are grouped N at a time into multi-turn conversations instead, as LLaVA-Video-178K lays out several
questions about one video: the video is encoded once for N answers. Within a video the pairs go shortest answer first,
so no answer is given away by an earlier, longer one (a summary before the questions it answers); the dense caption
stays a row of its own for the same reason. Videos of 20 minutes or more get no training rows.
The training rows' ``video`` is the absolute path of the source file (the trainer opens it), or ``videos/<file>``
relative to the dataset dir with ``--copy-videos`` (needed for a self-contained Hub dataset). The ``captions`` table
never publishes a local path: its ``video`` is the path relative to the videos root, or ``videos/<file>`` with
``--copy-videos``.

Example (a work dir with one finished video, written by hand here; ``annotate`` writes it for real)::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from datasets import load_dataset
    >>> from dataset_builder.build import build_dataset
    >>> from dataset_builder.records import AnnotationRecord, CaptionedSegment, QAPair
    >>> from dataset_builder.store import JsonlStore
    >>> work, out = Path(tempfile.mkdtemp()) / "work", Path(tempfile.mkdtemp()) / "dataset"
    >>> record = AnnotationRecord(
    ...     video_id="PMV/a", video="/videos/PMV/a.mp4", source="PMV", fingerprint="f00d", duration=42.0, fps=30.0,
    ...     segmentation="none", segments=(CaptionedSegment(0.0, 42.0, "A dog runs on a beach."),),
    ...     video_caption="A dog runs on a beach.", qa=(QAPair("general_qa", "What runs?", "A dog.", "short_global",
    ...     None, "qa_global@1.0"),), prompt_versions={"captions": ["short_caption@1.0"], "qa": ["qa_global@1.0"]},
    ...     models={"api": "gpt-4o"}, time=0.0)
    >>> store = JsonlStore(work / "annotations", "shard-00000-of-00001")
    >>> store.append(record.to_dict()); store.close()
    >>> stats = build_dataset(work, out)
    >>> rows = load_dataset(str(out), "stage1", split="train", cache_dir=str(out.parent / "hf_cache"))
    >>> rows.num_rows, rows[1]["messages"][0]["content"][1]["text"]  # the dense-caption row, then one per QA pair
    (2, 'What runs?')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from datasets import Dataset

from .card import write_card
from .error_log import ErrorLog
from .records import AnnotationRecord
from .schemas import CAPTIONS_FEATURES, QA_FEATURES, STAGE_BOUNDS, TRAINING_FEATURES, stage_of
from .store import JsonlStore

CAPTION_INSTRUCTION = "Describe this video in detail."
CONFIGS = ("captions", "qa", *STAGE_BOUNDS)


def read_annotations(work_dir: str | Path) -> list[AnnotationRecord]:
    """Finished video records of every shard, one per video id (the latest wins), sorted by id."""
    directory = Path(work_dir) / "annotations"
    if not directory.is_dir():
        raise ValueError(
            f"{directory} does not exist; run `python -m dataset_builder annotate --out {work_dir}` first."
        )
    records = JsonlStore(directory, "_reader").load_index("video_id")
    return [AnnotationRecord.from_dict(records[key]) for key in sorted(records)]


def failed_videos(work_dir: str | Path, finished: set[str]) -> dict[str, str]:
    """``{video_id: last reason}`` for videos that failed and never finished."""
    failures = {}
    for record in ErrorLog(JsonlStore(Path(work_dir) / "errors", "_reader")).records():
        if record.get("video_id") and record["video_id"] not in finished and record.get("stage") in ("read", "api"):
            failures[record["video_id"]] = record["reason"]
    return failures


def caption_row(record: AnnotationRecord, video: str) -> dict:
    """Annotation record -> ``captions`` row (``CAPTIONS_FEATURES``); ``video`` is the path the table publishes."""
    return {
        "video_id": record.video_id,
        "video": video,
        "source": record.source,
        "duration": record.duration,
        "fps": record.fps,
        "segmentation": record.segmentation,
        "segments": [asdict(segment) for segment in record.segments],
        "video_caption": record.video_caption,
        "prompt_versions": json.dumps(record.prompt_versions, sort_keys=True),
        "models": json.dumps(record.models, sort_keys=True),
    }


def explode_qa(batch: dict[str, list]) -> dict[str, list]:
    """Batched ``datasets.map`` step: ``{video_id, source, duration, qa}`` rows -> one ``qa`` row per question."""
    rows = {name: [] for name in QA_FEATURES}
    for video_id, source, duration, qa in zip(batch["video_id"], batch["source"], batch["duration"], batch["qa"]):
        for pair in qa:
            for name, value in (("video_id", video_id), ("source", source), ("duration", duration)):
                rows[name].append(value)
            for name in ("task_type", "strategy", "question", "answer", "prompt_version"):
                rows[name].append(pair[name])
    return rows


def chat(video_id: str, video: str, source: str, duration: float, *turns: tuple[str, str]) -> dict:
    """One training row: ``turns`` are ``(question, answer)`` pairs, the video item first in the first user turn."""
    messages = []
    for index, (question, answer) in enumerate(turns):
        user = [{"type": "text", "text": question}]
        if index == 0:
            user.insert(0, {"type": "video", "text": None})
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return {"video_id": video_id, "video": video, "source": source, "duration": duration, "messages": messages}


def _check_turns_per_row(turns_per_row: int) -> None:
    if turns_per_row < 1:
        raise ValueError(f"--turns-per-row must be 1 or more, got {turns_per_row}.")


def training_rows(record: AnnotationRecord, video: str, turns_per_row: int = 1) -> list[dict]:
    """Annotation record -> training rows: the dense caption, then the QA pairs -- one per row, or ``turns_per_row``
    per multi-turn row, shortest answer first."""
    _check_turns_per_row(turns_per_row)
    args = (record.video_id, video, record.source, record.duration)
    rows = [chat(*args, (CAPTION_INSTRUCTION, record.video_caption))]
    pairs = [(pair.question, pair.answer) for pair in record.qa]
    if turns_per_row > 1:
        pairs.sort(key=lambda pair: len(pair[1]))
    rows += [chat(*args, *pairs[i : i + turns_per_row]) for i in range(0, len(pairs), turns_per_row)]
    return rows


def _table(rows: list[dict], features) -> Dataset:
    if not rows:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(rows, features=features)


def _write(dataset: Dataset, out_dir: Path, config: str) -> str | None:
    """Replace ``out_dir/config`` with the dataset's Parquet file ``train-<content hash>.parquet``; returns its path
    relative to ``out_dir``. The name changes with the content, so ``load_dataset(out_dir, config)`` never serves an
    earlier build from its cache. An empty config gets no file (``load_dataset`` cannot read a split without rows) and
    ``None``: the card leaves it out of ``configs:``."""
    shutil.rmtree(out_dir / config, ignore_errors=True)
    if len(dataset) == 0:
        return None
    (out_dir / config).mkdir(parents=True)
    staging = out_dir / config / "train.parquet.tmp"
    dataset.to_parquet(str(staging))
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:16]
    name = f"{config}/train-{digest}.parquet"
    os.replace(staging, out_dir / name)
    return name


def build_dataset(
    work_dir: str | Path, out_dir: str | Path, copy_videos: bool = False, turns_per_row: int = 1
) -> dict:
    """Write all configs, plots and the card; returns the statistics shown in the card. ``turns_per_row``: QA pairs
    per training row (see the module docstring)."""
    _check_turns_per_row(turns_per_row)  # before anything is written
    out = Path(out_dir)
    records = read_annotations(work_dir)
    if not records:
        raise ValueError(f"No finished videos in {work_dir}/annotations; nothing to build.")
    out.mkdir(parents=True, exist_ok=True)
    videos, published = {}, {}
    for record in records:
        videos[record.video_id], published[record.video_id] = record.video, record.relative_video
        if copy_videos:
            target = Path("videos") / f"{record.video_id.replace('/', '__')}{Path(record.video).suffix}"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record.video, out / target)
            videos[record.video_id] = published[record.video_id] = target.as_posix()
    source = Dataset.from_list(
        [
            {"video_id": r.video_id, "source": r.source, "duration": r.duration, "qa": [asdict(p) for p in r.qa]}
            for r in records
        ]
    )
    qa = source.map(explode_qa, batched=True, remove_columns=source.column_names, features=QA_FEATURES)
    stages: dict[str, list[dict]] = {stage: [] for stage in STAGE_BOUNDS}
    for record in records:
        stage = stage_of(record.duration)
        if stage:
            stages[stage].extend(training_rows(record, videos[record.video_id], turns_per_row))
    tables = {
        "captions": _table([caption_row(r, published[r.video_id]) for r in records], CAPTIONS_FEATURES),
        "qa": qa,
    }
    tables |= {stage: _table(rows, TRAINING_FEATURES) for stage, rows in stages.items()}
    files = {config: _write(dataset, out, config) for config, dataset in tables.items()}
    written = {config: path for config, path in files.items() if path}
    copy_frame_cache(Path(work_dir) / "frame_cache", out / "frame_cache")
    failures = failed_videos(work_dir, set(videos))
    counts = {stage: len(rows) for stage, rows in stages.items()}
    return write_card(out, records, qa.to_list(), counts, failures, written)


def copy_frame_cache(source: Path, target: Path) -> None:
    """Put the work dir's frame cache beside the configs (hard links when possible: shards are append-only)."""
    if not source.is_dir():
        return
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def push_to_hub(out_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (if needed) the dataset repo and upload the built folder; returns the commit URL.

    The token comes from ``HF_TOKEN`` / the Hugging Face login unless given explicitly.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(out_dir), repo_id=repo_id, repo_type="dataset", commit_message="Upload ProLongVid dataset",
        delete_patterns=[f"{config}/*.parquet" for config in CONFIGS],  # an earlier build's data files
    )  # fmt: skip
    return str(getattr(commit, "commit_url", commit))
