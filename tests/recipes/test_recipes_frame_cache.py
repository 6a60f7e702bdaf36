"""The stage-1 recipe trains from the frame cache: with the source videos gone, only cached frames can feed it."""

import shutil

import pytest

from processing.frame_cache import FrameCacheWriter
from recipes.training.data import open_frame_cache
from tests.recipes.test_recipes_train import launch, tiny  # noqa: F401  (the module-scoped tiny inputs fixture)


def test_stage1_trains_from_the_frame_cache_without_the_videos(tiny, tmp_path):  # noqa: F811
    dataset = tmp_path / "dataset"
    shutil.copytree(tiny["data"] / "stage1", dataset / "stage1")
    writer = FrameCacheWriter(dataset / "frame_cache", writer_id="test", size=24)
    for video in sorted((tiny["data"] / "videos").glob("stage1_*.mp4")):
        writer.add_video(video.stem, video, num_frames=[4])
    out = tmp_path / "stage1"
    log = launch("stage1", "--model_name_or_path", tiny["prolongvid"], "--dataset_name", dataset,
                 "--output_dir", out, "--previous_stages", "any", "--num_frames", 4)  # fmt: skip
    assert "frame cache: 4 videos" in log
    assert (out / "model.safetensors").exists() or any(out.glob("model*.safetensors"))

    with pytest.raises(AssertionError, match="failed"):  # without the cache the missing videos are an error
        launch("stage1", "--model_name_or_path", tiny["prolongvid"], "--dataset_name", dataset,
               "--output_dir", tmp_path / "decode", "--previous_stages", "any", "--num_frames", 4,
               "--frame_cache_dir", "none")  # fmt: skip


def test_open_frame_cache_resolution(tmp_path):
    assert open_frame_cache(None, tmp_path) is None
    (tmp_path / "frame_cache").mkdir()
    assert open_frame_cache(None, tmp_path) is not None
    assert open_frame_cache("none", tmp_path) is None
    with pytest.raises(ValueError, match="does not exist"):
        open_frame_cache(str(tmp_path / "missing"), tmp_path)
