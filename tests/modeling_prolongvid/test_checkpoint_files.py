"""Broken weights, shards and configs: every error names the file and the fix, in the converter and when loading."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoModelForImageTextToText

from modeling_prolongvid.checkpoint_files import UnreadableCheckpointFile
from modeling_prolongvid.convert_prolongvid_weights_to_hf import main
from tests.modeling_prolongvid.upstream_checkpoint import write_upstream_checkpoint


class PrintsWhenUnpickled:
    """A pickle payload that calls a global (harmless here: `print`); `weights_only=True` must refuse it."""

    def __reduce__(self):
        return print, ("the payload ran",)


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def convert_error(upstream, tmp_path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["--input-dir", str(upstream), "--output-dir", str(tmp_path / "out"), "--num-frames", "32",
              "--vision-config", str(upstream / "vision.json")])  # fmt: skip
    assert "the payload ran" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    return str(exit_info.value.code)


@pytest.fixture
def upstream(tmp_path):
    return write_upstream_checkpoint(tmp_path / "upstream")


def test_converter_names_a_truncated_shard(upstream, tmp_path, capsys):
    shard = upstream / "model-00002-of-00002.safetensors"
    truncate(shard)
    message = convert_error(upstream, tmp_path, capsys)
    assert str(shard) in message and "truncated or corrupt" in message and "download the file again" in message


def test_converter_names_a_bin_holding_pickled_code(upstream, tmp_path, capsys):
    for shard in upstream.glob("*.safetensors"):
        shard.unlink()
    weights = upstream / "pytorch_model.bin"
    torch.save({"model.norm.weight": torch.ones(2), "payload": PrintsWhenUnpickled()}, weights)
    message = convert_error(upstream, tmp_path, capsys)
    assert str(weights) in message and "it calls the global `print`" in message and "safetensors" in message


def test_converter_names_a_truncated_bin(upstream, tmp_path, capsys):
    for shard in upstream.glob("*.safetensors"):
        shard.unlink()
    weights = upstream / "pytorch_model.bin"
    torch.save({"model.norm.weight": torch.ones(64)}, weights)
    truncate(weights)
    message = convert_error(upstream, tmp_path, capsys)
    assert str(weights) in message and "truncated or corrupt" in message


@pytest.mark.parametrize("name", ["config.json", "vision.json"])
def test_converter_names_a_broken_config(upstream, tmp_path, capsys, name):
    config = upstream / name
    config.write_text(config.read_text()[:-20])
    message = convert_error(upstream, tmp_path, capsys)
    assert str(config) in message and "not valid JSON" in message


def test_converter_names_a_broken_tokenizer(upstream, tmp_path, capsys):
    (upstream / "tokenizer.json").write_text("{")
    message = convert_error(upstream, tmp_path, capsys)
    assert f"cannot load the tokenizer of {upstream}" in message


@pytest.mark.parametrize("auto_class", [AutoModelForImageTextToText, AutoModel])
def test_loading_names_a_truncated_shard(tiny_checkpoint, tmp_path, auto_class):
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    truncate(checkpoint / "model.safetensors")
    with pytest.raises(UnreadableCheckpointFile, match="model.safetensors .* is truncated or corrupt") as error:
        auto_class.from_pretrained(checkpoint)
    assert str(checkpoint / "model.safetensors") in str(error.value)


def test_loading_names_a_bin_holding_pickled_code(tiny_checkpoint, tmp_path, capsys):
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    (checkpoint / "model.safetensors").unlink()
    torch.save({"lm_head.weight": torch.ones(2), "payload": PrintsWhenUnpickled()}, checkpoint / "pytorch_model.bin")
    with pytest.raises(UnreadableCheckpointFile, match="pytorch_model.bin holds pickled objects besides tensors"):
        AutoModelForImageTextToText.from_pretrained(checkpoint)
    assert "the payload ran" not in capsys.readouterr().out


def test_loading_readable_files_keeps_other_errors(tiny_checkpoint, tmp_path):
    """A size mismatch is transformers' own error; a training folder's `training_args.bin` (a pickle, not a weight
    file) is not blamed for it."""
    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    torch.save({"payload": PrintsWhenUnpickled()}, checkpoint / "training_args.bin")
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 48
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes") as error:
        AutoModelForImageTextToText.from_pretrained(checkpoint)
    assert not isinstance(error.value, UnreadableCheckpointFile)
