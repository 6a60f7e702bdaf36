"""The import: LLaVA-NeXT annotations + media -> a dataset folder the recipes train on, resumable after a kill.

Output (``load_dataset(OUT, "stage1")`` reads it through the card's YAML ``configs:``)::

    OUT/stage{1,2,3}/train-<run>-f<file>-c<chunk>.parquet   IMPORTED_VIDEO_FEATURES, by probed duration
    OUT/<image config>/train-<run>-...parquet               IMAGE_TRAINING_FEATURES (--modality image)
    OUT/images/                                              embedded Parquet images, written as files
    OUT/import_errors.jsonl                                  every row left out (see below)
    OUT/README.md, OUT/plots/*.png                           the card
    OUT/.import/                                             manifest, progress, probe cache, per-chunk errors

``import_errors.jsonl`` has one line per row left out, in reading order: ``{"video_id": the row's own id, "file",
"row": its number in the file (from 0), "stage": "parse" (the row) or "media" (its file), "kind", "reason",
"media": the path when known}``.

How it resumes: the annotation files are read in chunks of ``chunk_rows`` rows. A chunk's Parquet files are written
under a temporary name and renamed, its error records go to a file of its own, and only then is one line appended
to the progress log (``OUT/.import/progress``). A killed import therefore loses at most the chunk in flight: the
next run skips finished files, seeks past finished chunks (:class:`~dataset_builder.importing.readers.ResumePoint`)
and redoes the rest; probes of files already probed come from the cache. ``<run>`` is fixed when an import starts,
so every import's data files have names of their own (datasets caches a folder by its file patterns).

Example (a tiny JSON-lines file and one generated video)::

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from processing.synthetic import write_video
    >>> from dataset_builder.importing.importer import ImportSettings, import_annotations
    >>> tmp = Path(tempfile.mkdtemp())
    >>> _ = write_video(tmp / "media" / "a.mp4", num_frames=20, fps=10) if (tmp / "media").mkdir() is None else None
    >>> rows = [{"id": "r0", "video": "a.mp4", "conversations": [{"from": "human", "value": "<image>\\nWhat?"},
    ...                                                         {"from": "gpt", "value": "Gray frames."}]},
    ...         {"id": "r1", "video": "missing.mp4", "conversations": []}]
    >>> _ = (tmp / "rows.jsonl").write_text("".join(json.dumps(row) + "\\n" for row in rows))
    >>> summary = import_annotations(ImportSettings(tmp / "rows.jsonl", tmp / "media", tmp / "out", progress=False))
    >>> dict(summary.written), dict(summary.skipped)
    ({'stage1': 1}, {'no_conversation': 1})
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..error_log import ErrorLog
from ..schemas import IMAGE_CONFIGS, IMAGE_TRAINING_FEATURES, IMPORTED_VIDEO_FEATURES, STAGE_BOUNDS, stage_of
from ..store import JsonlStore
from .conversations import MalformedRow, ParsedRow, parse_row
from .media import MediaError, MediaProber, resolve_media, store_image
from .readers import Chunk, ResumePoint, UnreadableRow, find_annotation_files, iter_chunks
from .settings import ImportSettings, ImportSummary

WORK_DIR = ".import"
ALL_CONFIGS = (*STAGE_BOUNDS, *IMAGE_CONFIGS)
ERRORS_FILE = "import_errors.jsonl"


def _identity(settings: ImportSettings, files: list[Path]) -> dict:
    """Everything an import's output depends on: a resumed run must match it."""
    inputs = [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in files]
    options = {name: getattr(settings, name) for name in ("modality", "source", "image_config", "probe", "chunk_rows")}
    return {"inputs": inputs, "media_root": str(Path(settings.media_root).resolve()), **options}


def _write_parquet(rows: list[dict], features, target: Path) -> None:
    """Write ``rows`` as Parquet under a temporary name, then rename: a reader never sees half a file. The schema
    carries the ``datasets.Features`` (``features.arrow_schema``), as ``Dataset.to_parquet`` writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    pq.write_table(pa.Table.from_pylist(rows, schema=features.arrow_schema), partial)
    os.replace(partial, target)


class _Import:
    """One run of an import: the work dir, the run's name, the probe cache, and the chunk loop."""

    def __init__(self, settings: ImportSettings) -> None:
        self.settings = settings
        self.out = Path(settings.out)
        self.media_root = os.path.abspath(settings.media_root)  # the rows' `video` / `image` paths start with it
        if not os.path.isdir(self.media_root):
            raise ValueError(
                f"--media-root {self.media_root} is not a directory; pass the folder the paths are under."
            )
        self.files = find_annotation_files(settings.annotations, exclude=self.out)
        self.work = self.out / WORK_DIR
        self.token = self._open_work(_identity(settings, self.files))
        self.chunk_name = ""
        self.progress = JsonlStore(self.work / "progress", "chunks", fsync_interval=0)
        self.prober = MediaProber(self.work / "probes", settings.workers, settings.probe)

    def _lock(self) -> None:
        """Hold ``OUT/.import/lock`` (an exclusive ``flock``) while this run writes; the kernel frees it if we die."""
        import fcntl

        self.work.mkdir(parents=True, exist_ok=True)
        self.lock = open(self.work / "lock", "w")  # noqa: SIM115 -- held until close()
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock.close()
            raise ValueError(
                f"another import is writing {self.out} now; wait for it or choose another --out."
            ) from None

    def _open_work(self, identity: dict) -> str:
        manifest_path = self.work / "manifest.json"
        if not manifest_path.is_file() and self.out.is_dir():
            if any((self.out / name).exists() for name in ("README.md", *ALL_CONFIGS)):
                raise ValueError(
                    f"{self.out} holds a dataset that `import` did not write (a `build`?); choose a new --out. "
                    "Builds and imports are combined by listing their configs in the stage YAML, not by sharing a "
                    "folder."
                )
        self._lock()
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text())
            if manifest["identity"] == identity and not self.settings.restart:
                return manifest["token"]
            if not self.settings.restart:
                changed = sorted(k for k in identity if identity[k] != manifest["identity"].get(k))
                self.lock.close()
                raise ValueError(
                    f"{self.out} holds an import of other inputs or settings (changed: {', '.join(changed)}); pass "
                    "--restart to import again from scratch, or choose a new --out."
                )
            self._discard(manifest["token"])
        token = hashlib.sha256(f"{json.dumps(identity, sort_keys=True)}{time.time_ns()}".encode()).hexdigest()[:12]
        self.work.mkdir(parents=True, exist_ok=True)
        partial = manifest_path.with_suffix(".partial")
        partial.write_text(json.dumps({"identity": identity, "token": token}, indent=1))
        os.replace(partial, manifest_path)
        return token

    def _discard(self, token: str) -> None:
        """Remove an earlier import's data files and work dir; its probe cache stays (keyed by file size and mtime)."""
        for config in ALL_CONFIGS:
            for path in (self.out / config).glob(f"train-{token}-*.parquet"):
                path.unlink()
        for entry in self.work.iterdir():
            if entry.is_dir() and entry.name != "probes":
                shutil.rmtree(entry)
            elif entry.is_file() and entry.name != "lock":
                entry.unlink()

    def _data_file(self, config: str, name: str) -> Path:
        return self.out / config / f"train-{self.token}-{name}.parquet"

    def _reject(self, log: ErrorLog, skipped: Counter, error: MalformedRow | MediaError, stage: str, **where) -> None:
        """Count and record a row left out; ``where`` names the row (``row_id``, ``file``, ``row``, ``media``)."""
        skipped[error.kind] += 1
        log.record(where.pop("row_id"), stage, error.kind, str(error), chunk=self.chunk_name, **where)

    def _media_rows(self, parsed: list[tuple[int, ParsedRow, str | None]], log: ErrorLog, skipped: Counter, file: str):
        """``(number, row, media id, usable path, duration)`` for every row whose media is usable."""
        kind = self.settings.modality
        paths = [os.path.join(self.media_root, relative) for _, _, relative in parsed if relative is not None]
        probes = self.prober.probe(paths, kind)
        embedded = [row.media for _, row, relative in parsed if relative is None]
        stored = iter(())
        if embedded:
            with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
                stored = iter(list(pool.map(self._store, embedded)))
        for number, row, relative in parsed:
            where = {"row_id": row.row_id, "file": file, "row": number}
            if relative is None:
                outcome = next(stored)
                if isinstance(outcome, MediaError):
                    self._reject(log, skipped, outcome, "media", **where)
                else:
                    yield number, row, outcome, outcome, None
                continue
            path = os.path.join(self.media_root, relative)
            probe = probes[path]
            if not probe.ok:
                self._reject(log, skipped, MediaError(probe.kind, probe.reason), "media", media=relative, **where)
                continue
            yield number, row, relative, path, probe.duration

    def _store(self, data: bytes) -> str | MediaError:
        try:
            return store_image(data, self.out)
        except MediaError as error:
            return error

    def run_chunk(self, file_index: int, path: Path, chunk: Chunk) -> dict:
        """Convert, probe and write one chunk; returns (and logs) its progress record."""
        name = self.chunk_name = f"f{file_index:04d}-c{chunk.index:06d}"
        errors = JsonlStore(self.work / "errors", name)
        errors.path.unlink(missing_ok=True)  # a killed attempt's records: this attempt writes them again
        log, skipped, parsed, normalized = ErrorLog(errors), Counter(), [], 0
        for offset, raw in enumerate(chunk.rows):
            number = chunk.first_row + offset
            row_id = str(raw["id"]) if isinstance(raw, dict) and raw.get("id") is not None else f"{path.name}:{number}"
            try:
                if isinstance(raw, UnreadableRow):
                    raise MalformedRow("not_json", raw.reason)
                row = parse_row(raw, self.settings.modality, row_id, path.stem, self.settings.source)
                relative = resolve_media(row.media) if isinstance(row.media, str) else None
            except (MalformedRow, MediaError) as error:
                self._reject(log, skipped, error, "parse", row_id=row_id, file=path.name, row=number)
                continue
            parsed.append((number, row, relative))
        rows = {config: [] for config in self.settings.configs()}
        media, sources = {}, Counter()
        for number, row, media_id, usable, duration in self._media_rows(parsed, log, skipped, path.name):
            messages = row.conversation.messages
            if self.settings.modality == "image":
                config = self.settings.image_config
                out_row = {"video_id": media_id, "image": usable, "source": row.source, "messages": messages}
            else:
                config = stage_of(duration)
                out_row = {"video_id": media_id, "video": usable, "source": row.source, "duration": duration,
                           "messages": messages, "num_frames": row.num_frames}  # fmt: skip
            if self.settings.modality == "video":  # per-video statistics of the card; images are only counted
                words = max(row.conversation.answer_words, media.get(media_id, [0, 0, 0])[2])
                media[media_id] = [duration, row.source, words]
            else:
                media[media_id] = None
            if config is None:
                reason = f"{duration / 60:.1f} min: longer than stage3's 20 minutes, no stage trains on it"
                where = {"row_id": row.row_id, "file": path.name, "row": number, "media": media_id}
                self._reject(log, skipped, MediaError("too_long", reason), "media", **where)
                continue
            normalized += row.conversation.normalized
            sources[row.source] += 1
            rows[config].append(out_row)
        features = IMAGE_TRAINING_FEATURES if self.settings.modality == "image" else IMPORTED_VIDEO_FEATURES
        for config in ALL_CONFIGS:
            self._data_file(config, name).unlink(missing_ok=True)
        for config, config_rows in rows.items():
            if config_rows:
                _write_parquet(config_rows, features, self._data_file(config, name))
        log.close()
        record = {"file": file_index, "chunk": chunk.index, "end": list(vars(chunk.end).values()),
                  "rows_read": len(chunk.rows), "written": {c: len(r) for c, r in rows.items() if r},
                  "skipped": dict(skipped), "normalized": normalized, "sources": dict(sources),
                  "media": media if self.settings.modality == "video" else {},
                  "images": len(media) if self.settings.modality == "image" else 0}  # fmt: skip
        self.progress.append(record)
        return record

    def run(self) -> ImportSummary:
        from tqdm.auto import tqdm

        done: dict[int, dict[int, dict]] = {}
        complete = set()
        for record in self.progress.records():
            if record.get("complete"):
                complete.add(record["file"])
            else:
                done.setdefault(record["file"], {})[record["chunk"]] = record
        summary = ImportSummary(resumed_chunks=sum(len(chunks) for chunks in done.values()))
        sizes = [path.stat().st_size for path in self.files]
        bar = tqdm(total=sum(sizes), unit="B", unit_scale=True, desc="import", disable=not self.settings.progress,
                   file=sys.stderr)  # fmt: skip
        for file_index, path in enumerate(self.files):
            chunks = done.get(file_index, {})
            finished = 0
            while finished in chunks:  # chunks finish in order; resume after the last of the unbroken run
                summary.add(chunks[finished])
                finished += 1
            if file_index in complete:
                bar.update(sizes[file_index])
                continue
            start = ResumePoint(*chunks[finished - 1]["end"]) if finished else None
            read = 0.0
            for chunk in iter_chunks(path, self.settings.chunk_rows, start):
                summary.add(self.run_chunk(file_index, path, chunk))
                bar.update(int(chunk.fraction * sizes[file_index] - read))
                read = int(chunk.fraction * sizes[file_index])
                bar.set_postfix(
                    rows=summary.rows, written=sum(summary.written.values()), skipped=sum(summary.skipped.values())
                )
            self.progress.append({"file": file_index, "complete": True})
            bar.update(sizes[file_index] - read)
        bar.close()
        summary.probed = self.prober.probed
        return self.finish(summary)

    def close(self) -> None:
        """Flush the stores and free the lock (also after a failure)."""
        self.prober.close()
        self.progress.close()
        self.lock.close()

    def finish(self, summary: ImportSummary) -> ImportSummary:
        """Drop other runs' data files, gather the errors into one file, write the card."""
        from .card import write_import_card

        for config in ALL_CONFIGS:
            folder = self.out / config
            for stale in [*folder.glob("*.parquet"), *folder.glob(".*.partial")] if folder.is_dir() else ():
                if not stale.name.startswith(f"train-{self.token}-"):  # other runs' files, a killed write's part
                    stale.unlink()
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            files = sorted(p.relative_to(self.out).as_posix() for p in folder.glob(f"train-{self.token}-*.parquet"))
            if files:
                summary.data_files[config] = files
        summary.errors_path = self.out / ERRORS_FILE
        partial = summary.errors_path.with_suffix(".partial")
        records = ErrorLog(JsonlStore(self.work / "errors", "_reader")).records()  # chunk files in reading order
        with open(partial, "w") as handle:
            for record in sorted(records, key=lambda r: (r["chunk"], r["row"])):
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        os.replace(partial, summary.errors_path)
        write_import_card(self.out, self.token, self.settings, [str(p) for p in self.files], summary)
        return summary


def import_annotations(settings: ImportSettings) -> ImportSummary:
    """Import (or resume importing) ``settings.annotations`` into ``settings.out``; see the module docstring."""
    run = _Import(settings)
    try:
        return run.run()
    finally:
        run.close()
