"""Training data of the recipes: contract rows from a dataset directory, and packed long text.

```python
>>> import tempfile
>>> from pathlib import Path
>>> from modeling_prolongvid.tiny_checkpoint import build_tiny_tokenizer
>>> from recipes.training.tiny_inputs import write_long_text, write_tiny_dataset
>>> data = write_tiny_dataset(Path(tempfile.mkdtemp()) / "data")
>>> rows = load_training_rows(data, ["stage1", "stage2"])  # a datasets.Dataset of training rows
>>> len(rows), rows[0]["video"], rows[4]["subset"]  # every row records the subset it came from
(8, 'videos/stage1_0.mp4', 'stage2')
>>> open_frame_cache(None, data) is None  # no data/frame_cache/: the collator decodes the videos
True
>>> blocks = pack_text(build_tiny_tokenizer(), [write_long_text(data / "long.txt")], context_length=64)
>>> {len(ids) for ids in blocks["input_ids"]}
{64}

```
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, concatenate_datasets, load_dataset

from processing.frame_cache import FrameCache

REQUIRED_COLUMNS = ("messages",)


def split_subset(entry: str, dataset_dir: str | Path) -> tuple[Path, str]:
    """`"stage1"` -> `(dataset_dir, "stage1")`; `"other/dataset:stage2"` -> `(Path("other/dataset"), "stage2")`: a
    training mix can list configs of several built or imported datasets.

    >>> split_subset("stage1", "data"), split_subset("imported/videos:stage2", "data")
    ((PosixPath('data'), 'stage1'), (PosixPath('imported/videos'), 'stage2'))
    """
    folder, separator, config = entry.rpartition(":")
    return (Path(folder), config) if separator and folder else (Path(dataset_dir), entry)


def _absolute_media(part: Dataset, folder: Path) -> Dataset:
    """Rows of another dataset folder: their relative `video` / `image` paths made absolute against that folder."""
    columns = [column for column in ("video", "image") if column in part.column_names]

    def resolve(row: dict) -> dict:
        return {
            column: str(folder.resolve() / row[column])
            if row[column] and not Path(row[column]).is_absolute()
            else row[column]
            for column in columns
        }

    return part.map(resolve, desc=f"media paths of {folder}") if columns else part


def load_training_rows(dataset_dir: str | Path, subsets: list[str], max_rows: int | None = None) -> Dataset:
    """Concatenate the `train` split of `subsets` of the dataset at `dataset_dir` (Parquet under `<subset>/`), each
    row with a `subset` column naming its subset (the mixed baseline samples each subset's frame count).

    A subset written `DIR:CONFIG` comes from another dataset folder (a second build, an import): its rows' relative
    media paths are made absolute against `DIR`, so one stage can train on a mix of datasets.

    Raises ValueError naming the subset and the fix when a subset is missing, empty or lacks `messages`.
    """
    if not subsets:
        raise ValueError("No dataset subset given: set dataset_config (or dataset_configs) in the stage YAML.")
    parts = []
    for entry in subsets:
        folder, subset = split_subset(entry, dataset_dir)
        part = _load_subset(folder, subset)
        if folder != Path(dataset_dir):
            part = _absolute_media(part, folder)
        parts.append(part)
    rows = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return rows.select(range(min(max_rows, len(rows)))) if max_rows else rows


def _load_subset(dataset_dir: Path, subset: str) -> Dataset:
    files = sorted((dataset_dir / subset).glob("*.parquet"))
    if files:
        part = load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    elif (dataset_dir / "README.md").is_file():
        part = load_dataset(str(dataset_dir), subset, split="train")
    else:
        raise ValueError(
            f"Subset {subset!r} not found: expected Parquet files under {dataset_dir / subset}. Build the dataset "
            "first (python -m dataset_builder) or fix dataset_name / dataset_config."
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in part.column_names]
    if missing or len(part) == 0:
        raise ValueError(f"Subset {subset!r} of {dataset_dir} is empty or lacks columns {missing}.")
    if "subset" in part.column_names:
        part = part.remove_columns("subset")
    return part.add_column("subset", [subset] * len(part))


def open_frame_cache(frame_cache_dir: str | None, dataset_dir: str | Path | None) -> FrameCache | None:
    """The frame cache to read videos' frames from: `frame_cache_dir`, else the dataset's own `frame_cache/`.

    `"none"` disables the cache; a named directory that does not exist is an error.
    """
    if frame_cache_dir is not None and frame_cache_dir.lower() == "none":
        return None
    if frame_cache_dir is not None:
        if not Path(frame_cache_dir).is_dir():
            raise ValueError(f"frame_cache_dir={frame_cache_dir} does not exist; fix the path or pass `none`.")
        return FrameCache(frame_cache_dir)
    shipped = Path(dataset_dir) / "frame_cache" if dataset_dir else None
    return FrameCache(shipped) if shipped is not None and shipped.is_dir() else None


def pack_text(tokenizer, paths: list[str | Path], context_length: int, max_blocks: int | None = None) -> Dataset:
    """Tokenize the text files (documents separated by EOS) and cut the stream into `context_length` blocks.

    Returns a Dataset with one `input_ids` column of equal-length lists; the remainder is dropped.
    """
    stream: list[int] = []
    eos = tokenizer.eos_token_id
    for path in paths:
        text = Path(path).read_text()
        for document in filter(None, (part.strip() for part in text.split("\n\n"))):
            stream.extend(tokenizer(document, add_special_tokens=False)["input_ids"] + [eos])
    num_blocks = len(stream) // context_length
    if max_blocks is not None:
        num_blocks = min(num_blocks, max_blocks)
    if num_blocks == 0:
        raise ValueError(
            f"{[str(p) for p in paths]} hold {len(stream)} tokens, fewer than one block of context_length="
            f"{context_length}; add text or lower context_length."
        )
    blocks = [stream[i * context_length : (i + 1) * context_length] for i in range(num_blocks)]
    return Dataset.from_dict({"input_ids": blocks})
