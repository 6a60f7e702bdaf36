"""Read checkpoint files (JSON configs, safetensors shards, PyTorch `.bin` weights) with errors that name the file.

The libraries underneath report a broken file without its path: a truncated shard gives a bare `SafetensorError`, a
`.bin` holding pickled code gives `UnpicklingError ... unsupported GLOBAL`, a truncated `.bin` a miniz error, a broken
JSON file a `JSONDecodeError` at "line 1 column 2". Here every such failure becomes an `UnreadableCheckpointFile`
that names the file, says what is wrong with it and how to get a good copy. Used by the converter (upstream files) and
by `ProLongVidForConditionalGeneration.from_pretrained` (converted checkpoints), so it travels with the remote code.

Example:

```python
>>> import tempfile
>>> from pathlib import Path
>>> broken = Path(tempfile.mkdtemp()) / "config.json"
>>> _ = broken.write_text('{"hidden_size": 32,')
>>> read_json(broken)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
modeling_prolongvid.checkpoint_files.UnreadableCheckpointFile: .../config.json is not valid JSON (...): ...

```
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

# Weight files only: a training folder's `training_args.bin` is a pickle of arguments, never read.
SAFETENSORS_PATTERN = "*.safetensors"
BIN_PATTERNS = ("pytorch_model*.bin", "model*.bin")
INDEX_PATTERNS = ("*.safetensors.index.json", "*.bin.index.json")
DOWNLOAD_AGAIN = "download the file again (e.g. `hf download REPO FILE --force-download`)"


class UnreadableCheckpointFile(OSError):
    """A checkpoint file that exists but cannot be read; the message names it and the fix."""


def read_json(path: str | Path) -> dict:
    """`path`'s JSON object; a missing or broken file raises `UnreadableCheckpointFile` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise UnreadableCheckpointFile(f"{path} does not exist: the checkpoint folder is incomplete") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UnreadableCheckpointFile(f"{path} is not valid JSON ({error}): {DOWNLOAD_AGAIN}") from error


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of one safetensors shard or one PyTorch `.bin` file (read with `weights_only=True`: pickled code is
    refused, never run)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except SafetensorError as error:
            raise unreadable_shard(path, error) from error
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise refused_pickle(path, error) from error
    except (RuntimeError, EOFError) as error:
        raise unreadable_shard(path, error) from error


def unreadable_shard(path: Path, error: Exception) -> UnreadableCheckpointFile:
    size = path.stat().st_size if path.exists() else 0
    return UnreadableCheckpointFile(
        f"{path} ({size:,} bytes) is truncated or corrupt ({type(error).__name__}: {first_line(error)}): "
        f"{DOWNLOAD_AGAIN}"
    )


def refused_pickle(path: Path, error: Exception) -> UnreadableCheckpointFile:
    blocked = re.search(r"GLOBAL ([\w.]+)", str(error))
    detail = f"it calls the global `{blocked.group(1)}`" if blocked else first_line(error)
    return UnreadableCheckpointFile(
        f"{path} holds pickled objects besides tensors ({detail}); it was not loaded, because loading it would run "
        "code from the file. Use the checkpoint's *.safetensors weights, or download the file again from its "
        "publisher; only a file you trust may be converted to safetensors first "
        "(`safetensors.torch.save_file(torch.load(path, weights_only=False), 'model.safetensors')`)."
    )


def first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else repr(error)


def check_weight_file(path: Path) -> None:
    """Raise `UnreadableCheckpointFile` when `path` (a shard or a shard index) cannot be read, without loading the
    tensors' data (safetensors: the header; `.bin`: memory-mapped)."""
    if path.name.endswith(".index.json"):
        read_json(path)
    elif path.suffix == ".safetensors":
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as error:
            raise unreadable_shard(path, error) from error
    else:
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except pickle.UnpicklingError as error:
            raise refused_pickle(path, error) from error
        except (RuntimeError, EOFError, ValueError):
            read_weights(path)  # a valid legacy (non-zip) file cannot be memory-mapped: read it whole


def find_unreadable_weight_file(directory: str | Path) -> UnreadableCheckpointFile | None:
    """The error of the first unreadable shard index or weight file in `directory`, or None if all read."""
    for path in weight_files(directory, with_indexes=True):
        try:
            check_weight_file(path)
        except UnreadableCheckpointFile as error:
            return error
    return None


def weight_files(directory: str | Path, with_indexes: bool = False) -> list[Path]:
    """The safetensors shards of `directory`, else its PyTorch `.bin` weight files (sorted), plus the shard indexes
    first when `with_indexes`."""
    directory = Path(directory)
    indexes = sorted({path for pattern in INDEX_PATTERNS for path in directory.glob(pattern)})
    files = sorted(directory.glob(SAFETENSORS_PATTERN)) or sorted(
        {path for pattern in BIN_PATTERNS for path in directory.glob(pattern)}
    )
    return (indexes if with_indexes else []) + files


def locate_checkpoint_folder(name_or_path: str | Path, subfolder: str = "", **hub_kwargs) -> Path | None:
    """The local folder of a checkpoint: `name_or_path` itself, or the Hub cache's snapshot of that repo id (never
    downloads); None when there is none."""
    folder = Path(name_or_path) / subfolder
    if folder.is_dir():
        return folder
    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=True, **hub_kwargs)) / subfolder
    except (OSError, ValueError):
        return None


class CheckpointFileErrorsMixin:
    """`from_pretrained` whose failure on an unreadable weight file or shard index names that file and the fix
    (transformers passes on the bare `SafetensorError` / `UnpicklingError` / miniz error)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
            hub_kwargs = {key: kwargs[key] for key in ("revision", "cache_dir") if kwargs.get(key) is not None}
            folder = locate_checkpoint_folder(
                pretrained_model_name_or_path, kwargs.get("subfolder") or "", **hub_kwargs
            )
            culprit = find_unreadable_weight_file(folder) if folder is not None else None
            if culprit is None:
                raise
            raise culprit from error


__all__ = [
    "CheckpointFileErrorsMixin",
    "UnreadableCheckpointFile",
    "find_unreadable_weight_file",
    "locate_checkpoint_folder",
    "read_json",
    "read_weights",
    "weight_files",
]
