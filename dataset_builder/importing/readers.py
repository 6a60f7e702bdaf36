"""Annotation files -> chunks of rows that an import can resume from.

Accepted files: a JSON array of rows (upstream's stage files, e.g. ``stage2_yt8m_2-5min_train_data.json``), JSON
lines, or Parquet (LLaVA-OneVision-Data's layout: ``id``, ``conversations``, ``data_source``, ``image`` as
``{"bytes", "path"}``). A JSON array is decoded one row at a time (the file's rows are never all in memory as
objects), so a chunk ends at a known position: ``offset`` (a character position for JSON, a byte position for JSON
lines, a row number for Parquet) lets a resumed import start right after the last finished chunk.

A JSON-lines line that is not JSON becomes an :class:`UnreadableRow` (the import records it and goes on); a JSON
file that is not an array of rows cannot be split into rows and raises ``ValueError``.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dataset_builder.importing.readers import iter_chunks
    >>> path = Path(tempfile.mkdtemp()) / "rows.json"
    >>> _ = path.write_text(json.dumps([{"id": str(i)} for i in range(5)]))
    >>> chunks = list(iter_chunks(path, chunk_rows=2))
    >>> [(c.index, c.first_row, [r["id"] for r in c.rows]) for c in chunks]
    [(0, 0, ['0', '1']), (1, 2, ['2', '3']), (2, 4, ['4'])]
    >>> [r["id"] for c in iter_chunks(path, 2, start=chunks[0].end) for r in c.rows]  # resume after chunk 0
    ['2', '3', '4']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".json", ".jsonl", ".parquet")
_WHITESPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class UnreadableRow:
    """A row whose text could not be decoded (JSON lines only)."""

    reason: str


@dataclass(frozen=True)
class ResumePoint:
    """Where reading continues: the next chunk's number, its first row's number, and the file ``offset``."""

    chunk: int
    row: int
    offset: int


@dataclass(frozen=True)
class Chunk:
    """Up to ``chunk_rows`` consecutive rows of one file.

    Attributes:
        index: the chunk's number in the file (0, 1, ...).
        first_row: the file-wide number of its first row.
        rows: the decoded rows (dicts, or anything else a JSON array holds) and :class:`UnreadableRow` entries.
        offset: where the next chunk starts (characters, bytes or rows; see the module docstring).
        fraction: how much of the file is read once this chunk is (0..1], for the progress bar.
    """

    index: int
    first_row: int
    rows: list
    offset: int
    fraction: float

    @property
    def end(self) -> ResumePoint:
        """Where the chunk after this one starts (stored by the import once this chunk is written)."""
        return ResumePoint(self.index + 1, self.first_row + len(self.rows), self.offset)


def find_annotation_files(path: str | Path, exclude: str | Path | None = None) -> list[Path]:
    """``path`` itself, or every ``.json`` / ``.jsonl`` / ``.parquet`` file below the directory ``path``, sorted;
    files inside the directory ``exclude`` (the import's own output) are left out."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise ValueError(f"{path}: not an annotation file; pass a {' / '.join(SUFFIXES)} file or a directory.")
        return [path]
    if not path.is_dir():
        raise ValueError(f"--annotations {path} does not exist; pass an annotation file or a directory of them.")
    outside = Path(exclude).resolve() if exclude is not None else None
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix in SUFFIXES and p.is_file() and (outside is None or outside not in p.resolve().parents)
    )
    if not files:
        raise ValueError(f"{path} holds no {' / '.join(SUFFIXES)} files.")
    return files


def _json_array_rows(path: Path, offset: int) -> Iterator[tuple[object, int, float]]:
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    position = _WHITESPACE.match(text, offset).end()
    if offset == 0:
        if not text.startswith("[", position):
            raise ValueError(
                f"{path}: a .json annotation file must hold one array of rows ([{{...}}, ...]); "
                "use .jsonl for one row per line."
            )
        position = _WHITESPACE.match(text, position + 1).end()
        if text.startswith("]", position):
            return
    else:  # right after a row: the array goes on with a comma or ends
        if text.startswith("]", position):
            return
        if not text.startswith(",", position):
            raise ValueError(f"{path}: expected ',' or ']' at character {position}; the file changed or is not JSON.")
        position += 1
    while True:
        try:
            row, position = decoder.raw_decode(text, _WHITESPACE.match(text, position).end())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON at character {error.pos} ({error.msg}); fix the file.") from None
        yield row, position, position / len(text)
        after = _WHITESPACE.match(text, position).end()
        if text.startswith("]", after):
            return
        if not text.startswith(",", after):
            raise ValueError(f"{path}: expected ',' or ']' at character {after}; the file is truncated or not JSON.")
        position = after + 1


def _json_lines_rows(path: Path, offset: int) -> Iterator[tuple[object, int, float]]:
    size = path.stat().st_size or 1
    with open(path, "rb") as handle:
        handle.seek(offset)
        for line in handle:
            offset += len(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                row = UnreadableRow(f"line is not JSON ({error})")
            yield row, offset, offset / size


def _parquet_rows(path: Path, offset: int) -> Iterator[tuple[object, int, float]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    total = parquet.metadata.num_rows or 1
    row = 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if row + size <= offset:  # a finished row group is not read again
            row += size
            continue
        for batch in parquet.iter_batches(batch_size=1024, row_groups=[group]):
            for record in batch.to_pylist():
                row += 1
                if row > offset:
                    yield record, row, row / total


def iter_chunks(path: str | Path, chunk_rows: int, start: ResumePoint | None = None) -> Iterator[Chunk]:
    """Chunks of ``chunk_rows`` rows of ``path``, from its beginning or from ``start`` (an earlier chunk's ``end``)."""
    path = Path(path)
    readers = {".json": _json_array_rows, ".jsonl": _json_lines_rows, ".parquet": _parquet_rows}
    index, first_row, begin = (start.chunk, start.row, start.offset) if start else (0, 0, 0)
    rows, offset, fraction = [], begin, 0.0
    for row, offset, fraction in readers[path.suffix](path, begin):
        rows.append(row)
        if len(rows) == chunk_rows:
            yield Chunk(index, first_row, rows, offset, fraction)
            index, first_row, rows = index + 1, first_row + len(rows), []
    if rows:
        yield Chunk(index, first_row, rows, offset, fraction)
