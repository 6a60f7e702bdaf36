"""The bundled world model (`load_model("tiny")`, `modeling_prolongvid/world_model/`): loaded from the shipped files
with no network and no building, and scoring on the world's held-out benchmark exactly what its card states
(`results.json`, written by `recipes.world.card`)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modeling_prolongvid.inference import load_model

REPO = Path(__file__).resolve().parents[2]
WORLD_MODEL = REPO / "modeling_prolongvid" / "world_model"
STATED = json.loads((WORLD_MODEL / "results.json").read_text())


def test_load_model_tiny_loads_the_bundled_files_offline_without_building(monkeypatch):
    import modeling_prolongvid.tiny_checkpoint as tiny_checkpoint

    def no_building(*args, **kwargs):
        raise AssertionError("load_model('tiny') built a random checkpoint instead of loading the bundled one")

    def no_network(self, address):
        raise AssertionError(f"load_model('tiny') opened a connection to {address}")

    monkeypatch.setattr(tiny_checkpoint, "build_tiny_checkpoint", no_building)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model, processor = load_model("tiny", device="cpu")

    assert Path(model.name_or_path) == WORLD_MODEL
    shipped = load_file(WORLD_MODEL / "model.safetensors")
    loaded = model.state_dict()
    assert len(shipped) == len(loaded)
    # The shipped tensors, by value (names may be remapped on load): every loaded tensor is one of them, bit for bit.
    by_shape: dict[tuple, list[torch.Tensor]] = {}
    for tensor in shipped.values():
        by_shape.setdefault(tuple(tensor.shape), []).append(tensor)
    for name, tensor in loaded.items():
        assert any(torch.equal(tensor, candidate) for candidate in by_shape.get(tuple(tensor.shape), [])), name

    config = json.loads((WORLD_MODEL / "config.json").read_text())
    assert model.config.num_frames == config["num_frames"] and model.config.max_frames == config["max_frames"]
    vocabulary = json.loads((WORLD_MODEL / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocabulary.items() <= processor.tokenizer.get_vocab().items()


def test_the_shipped_records_name_no_path_of_the_machine_that_trained_them():
    """results.json and the stage record travel with the kit: what they name is relative to the run's layout."""
    record = json.loads((WORLD_MODEL / "prolongvid_stage.json").read_text())
    assert [step["stage"] for step in record["history"]] == ["world_init", "image_sft", "stage1", "stage2", "stage3"]
    for step in record["history"]:
        assert not Path(step["started_from"]).is_absolute(), step
    for name in ("results.json", "prolongvid_stage.json"):
        text = (WORLD_MODEL / name).read_text()
        assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text, name


def score_world_model(tmp_path: Path, videos_per_band: dict[str, int], scoring: str = "generate") -> dict:
    """The harness's metrics (by `scoring`) for the shipped checkpoint on a freshly written benchmark of
    `videos_per_band`."""
    from dataset_builder.world.benchmark import write_benchmark
    from evaluation.runner import EvaluationConfig, run_evaluation

    data = write_benchmark(tmp_path / "benchmark", videos_per_band=videos_per_band)
    config = EvaluationConfig(
        model=str(WORLD_MODEL),
        benchmark=STATED["benchmark"],
        data=data,
        out=tmp_path / "eval",
        frames=[STATED["frames"]],
        dtype="float32",
        device="cpu",
        num_workers=0,
        strict=True,
        scoring=scoring,
    )
    [result_file] = run_evaluation(config)
    return json.loads(Path(result_file).read_text())["metrics"]


def test_the_shipped_checkpoint_scores_the_stated_accuracy_on_the_benchmark_subset(tmp_path):
    subset = STATED["subset"]
    metrics = score_world_model(tmp_path, subset["videos_per_band"])
    assert metrics["questions"] == subset["questions"]
    assert metrics["accuracy"] == subset["accuracy"], "results.json states another subset score than the checkpoint's"


def test_the_shipped_checkpoint_scores_the_stated_likelihood_accuracy_on_the_benchmark_subset(tmp_path):
    subset = STATED["likelihood"]["subset"]
    metrics = score_world_model(tmp_path, subset["videos_per_band"], scoring="likelihood")
    assert metrics["questions"] == subset["questions"] and metrics["parse_failures"] == 0
    assert metrics["accuracy"] == subset["accuracy"], "results.json states another likelihood score on the subset"


@pytest.mark.slow
def test_the_shipped_checkpoint_scores_the_stated_likelihood_accuracy_on_the_whole_benchmark(tmp_path):
    metrics = score_world_model(tmp_path, STATED["benchmark_videos"], scoring="likelihood")
    assert metrics["accuracy"] == STATED["likelihood"]["accuracy"]
    for group in ("by_duration", "by_category"):
        measured = {name: metrics[group].get(name, {}).get("accuracy") for name in STATED["likelihood"][group]}
        assert measured == STATED["likelihood"][group], group


@pytest.mark.slow
def test_the_shipped_checkpoint_scores_the_stated_accuracy_on_the_whole_benchmark(tmp_path):
    metrics = score_world_model(tmp_path, STATED["benchmark_videos"])
    assert metrics["questions"] == STATED["questions"]
    assert metrics["accuracy"] == STATED["accuracy"]
    for group in ("by_duration", "by_category"):
        measured = {name: metrics[group].get(name, {}).get("accuracy") for name in STATED[group]}
        assert measured == STATED[group], group
