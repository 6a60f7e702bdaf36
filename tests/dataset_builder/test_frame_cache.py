"""The annotator fills the frame cache as it decodes; the built dataset carries it; sharded runs share one cache."""

import numpy as np
import pytest
from datasets import load_dataset

from dataset_builder.__main__ import main
from processing import load_video
from processing.frame_cache import FrameCache
from processing.synthetic import write_scene_video
from tests.dataset_builder.fixtures import annotate


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_scene_video(root / "long.mp4", [25, 20, 20])
    write_scene_video(root / "short.mp4", [4, 6])
    write_scene_video(root / "other.mp4", [5, 3])
    (root / "broken.mp4").write_bytes(b"not a video" * 20)
    return root


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")


def test_sharded_runs_fill_one_cache_that_matches_decoding(videos, server, tmp_path):
    work, out = tmp_path / "work", tmp_path / "dataset"
    codes = [annotate(videos, work, server, "--shard", f"{index}/2") for index in range(2)]
    assert sorted(codes) == [0, 3]  # the broken video is in one shard
    assert sorted(p.name for p in (work / "frame_cache").glob("index-*.jsonl")) == [
        "index-shard-00000-of-00002.jsonl",
        "index-shard-00001-of-00002.jsonl",
    ]
    cache = FrameCache(work / "frame_cache")
    assert sorted(cache.entries) == ["long", "other", "short"]
    for video_id in cache.entries:
        frames, timestamps = cache.sample(video_id, fps=1.0)
        expected_frames, expected_timestamps = load_video(videos / f"{video_id}.mp4", fps=1.0, size=384)
        np.testing.assert_allclose(timestamps, expected_timestamps)
        assert frames.shape == expected_frames.shape
        assert np.abs(frames.astype(int) - expected_frames.astype(int)).mean() < 8

    writes = {path.name: path.stat().st_size for path in (work / "frame_cache").iterdir()}
    assert annotate(videos, work, server, "--shard", "0/2") == codes[0]  # re-run: nothing decoded or re-cached
    assert {path.name: path.stat().st_size for path in (work / "frame_cache").iterdir()} == writes

    assert main(["build", "--work-dir", str(work), "--out", str(out)]) == 0
    shipped = FrameCache(out / "frame_cache")
    rows = load_dataset(str(out), "stage1", split="train", cache_dir=str(tmp_path / "hf"))
    assert set(rows["video_id"]) <= set(shipped.entries) and len(rows) > 0
    np.testing.assert_array_equal(shipped.read("long")[0], cache.read("long")[0])


def test_no_frame_cache_flag(videos, server, tmp_path):
    assert annotate(videos, tmp_path / "work", server, "--no-frame-cache", "--segmentation", "fixed") == 3
    assert not (tmp_path / "work" / "frame_cache").exists()
