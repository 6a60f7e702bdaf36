"""Frame models load once, before any video; when they cannot be loaded the run stops in seconds, naming the fix."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_builder.__main__ import main
from processing.synthetic import write_scene_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_scene_video(root / "long.mp4", [35, 35])  # semantic segmentation needs the frame models
    write_scene_video(root / "short.mp4", [4, 6])
    return root


def test_an_uncached_model_offline_stops_the_run_in_seconds_before_any_video(videos, tmp_path, capsys):
    work = tmp_path / "work"
    argv = ["annotate", "--videos", str(videos), "--out", str(work), "--dry-run", "--no-progress",
            "--frame-captioner", "nobody/no-such-captioner"]  # fmt: skip
    start = time.monotonic()
    assert main(argv) == 2  # HF_HUB_OFFLINE=1 in the test session (root conftest.py)
    assert time.monotonic() - start < 5
    message = " ".join(capsys.readouterr().err.split())
    assert "frame captioner 'nobody/no-such-captioner'" in message
    assert "--frame-captioner PATH" in message and "HF_HUB_OFFLINE=1" in message
    assert not (work / "local").exists() and not (work / "errors").exists(), "no video was touched"


def test_the_embedder_error_names_its_option():
    from dataset_builder.frame_models import ImageTextEmbedder, load_frame_model

    with pytest.raises(ValueError, match="embedder 'nobody/no-such-embedder'.*--embedder PATH"):
        load_frame_model("embedder", "--embedder", "nobody/no-such-embedder", ImageTextEmbedder)


def test_an_unreachable_hub_is_detected_in_seconds_not_after_minutes_of_retries(videos, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    argv = ["annotate", "--videos", str(videos), "--out", str(tmp_path / "work"), "--dry-run", "--no-progress"]
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dataset_builder", *argv], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=90)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert time.monotonic() - start < 30
    message = " ".join(result.stderr.split())
    assert "frame captioner 'microsoft/Florence-2-large'" in message and "unreachable" in message


@pytest.mark.slow
def test_a_cached_model_loads_from_the_cache_when_the_hub_is_unreachable(tmp_path):
    from tests.dataset_builder.fixtures import build_tiny_siglip

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--test--tiny-siglip"
    build_tiny_siglip(repo / "snapshots" / revision)  # the Hugging Face cache layout of a downloaded repo
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    code = (
        "from dataset_builder.frame_models import ImageTextEmbedder; print(ImageTextEmbedder('test/tiny-siglip').name)"
    )
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "test/tiny-siglip" and time.monotonic() - start < 120  # imports; was > 300 s
