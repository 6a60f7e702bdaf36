"""The frame cache: the frames training samples, exactly; agreement with decoding, integrity fallbacks, concurrent
writers."""

from __future__ import annotations

import logging
import multiprocessing

import numpy as np
import pytest

from processing import load_video, probe_video
from processing.frame_cache import (
    FrameCache,
    FrameCacheMiss,
    FrameCacheWriter,
    load_frames,
    pixel_error,
    stage_num_frames,
)
from processing.frame_sampling import sample_frame_indices
from processing.synthetic import write_scene_video, write_video


def cache_video(writer: FrameCacheWriter, video_id: str, path) -> None:
    """What the annotator does: decode at 1 fps and hand the frames to the cache."""
    info = probe_video(path)
    frames, timestamps = load_video(path, fps=1.0)
    writer.add(video_id, frames, timestamps, sample_frame_indices(info.num_frames, info.fps, fps=1.0),
               info.num_frames, info.fps)  # fmt: skip


@pytest.fixture
def cached(tmp_path, make_video):
    path = make_video("a.mp4", num_frames=200, fps=10)
    cache_video(FrameCacheWriter(tmp_path / "cache", writer_id="w0", size=None, quality=95), "a", path)
    return path, tmp_path / "cache"


@pytest.mark.parametrize("fps", [1.0, 0.5, 0.25])
def test_cached_frames_equal_decoded_frames_on_the_cached_grid(cached, fps):
    path, cache_dir = cached
    frames, timestamps = FrameCache(cache_dir).sample("a", fps=fps)
    expected_frames, expected_timestamps = load_video(path, fps=fps)
    np.testing.assert_allclose(timestamps, expected_timestamps)
    assert np.abs(frames.astype(int) - expected_frames.astype(int)).mean() < 3


def test_other_frame_counts_are_decoded_unless_a_tolerance_is_stated(cached, caplog):
    path, cache_dir = cached
    with pytest.raises(FrameCacheMiss, match="max_offset=0"):
        FrameCache(cache_dir).sample("a", num_frames=7)
    with caplog.at_level(logging.WARNING):
        frames, timestamps = load_frames(path, video_id="a", num_frames=7, cache=FrameCache(cache_dir))
    expected_frames, expected_timestamps = load_video(path, num_frames=7)
    np.testing.assert_array_equal(frames, expected_frames)  # decoded, not cached
    np.testing.assert_allclose(timestamps, expected_timestamps)
    assert caplog.text == ""  # a miss is expected, not a problem
    with pytest.raises(FrameCacheMiss, match="0.900s"):  # the last frame, 199, is 9 frames past the last cached one
        FrameCache(cache_dir, max_offset=0.5).sample("a", num_frames=7)
    frames, timestamps = FrameCache(cache_dir, max_offset=1.0).sample("a", num_frames=7)
    error = np.abs(timestamps - expected_timestamps)
    assert frames.shape[0] == 7 and np.all(error <= 0.9 + 1e-6) and error.max() > 0


def test_max_frames_bound_applies(cached):
    path, cache_dir = cached
    assert FrameCache(cache_dir).sample("a", fps=1.0, max_frames=20)[0].shape[0] == 20  # under the cap: the grid
    frames, timestamps = load_frames(path, "a", fps=1.0, max_frames=5, cache=FrameCache(cache_dir))
    assert frames.shape[0] == 5  # llava_vid's cap: 5 uniform frames, not cached, decoded
    np.testing.assert_allclose(timestamps, load_video(path, num_frames=5)[1])


def test_corrupt_shard_falls_back_to_decoding_with_a_warning(cached, caplog):
    path, cache_dir = cached
    shard = next(cache_dir.glob("shard-*.bin"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        frames, timestamps = load_frames(path, video_id="a", fps=1.0, cache=FrameCache(cache_dir))
    assert "a: shard" in caplog.text and "checksum" in caplog.text
    expected_frames, expected_timestamps = load_video(path, fps=1.0)
    np.testing.assert_array_equal(frames, expected_frames)
    np.testing.assert_allclose(timestamps, expected_timestamps)


def test_truncated_or_missing_shard_falls_back(cached, caplog):
    path, cache_dir = cached
    shard = next(cache_dir.glob("shard-*.bin"))
    shard.write_bytes(shard.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        frames, _ = load_frames(path, video_id="a", num_frames=4, cache=FrameCache(cache_dir))
    assert frames.shape[0] == 4 and "truncated or corrupt" in caplog.text
    shard.unlink()
    frames, _ = load_frames(path, video_id="a", num_frames=4, cache=FrameCache(cache_dir))
    assert frames.shape[0] == 4


def test_torn_index_line_is_skipped_and_other_entries_survive(cached, make_video):
    path, cache_dir = cached
    writer = FrameCacheWriter(cache_dir, writer_id="w0", size=None)
    cache_video(writer, "b", make_video("b.mp4", num_frames=30))
    index = cache_dir / "index-w0.jsonl"
    index.write_text(index.read_text() + '{"video_id": "c", "shard": ')
    cache = FrameCache(cache_dir)
    assert "a" in cache and "b" in cache and "c" not in cache
    assert cache.sample("b", fps=1.0)[0].shape[0] == 3


def test_missing_video_decodes(tmp_path, make_video):
    path = make_video("x.mp4", num_frames=20)
    frames, _ = load_frames(path, num_frames=3, cache=FrameCache(tmp_path / "empty"))
    assert frames.shape[0] == 3


def test_writer_resizes_and_validates(tmp_path):
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    square = FrameCacheWriter(tmp_path, writer_id="s", size=16)
    square.add("v", frames, np.array([0.0, 1.0]), np.array([0, 10]), 20, 10.0)
    short = FrameCacheWriter(tmp_path, writer_id="t", size=24, resize_mode="short_side", image_format="webp")
    short.add("w", frames, np.array([0.0, 1.0]), np.array([0, 10]), 20, 10.0)
    cache = FrameCache(tmp_path)
    assert cache.read("v")[0].shape == (2, 16, 16, 3) and cache.read("w")[0].shape == (2, 24, 32, 3)
    with pytest.raises(ValueError, match="image_format"):
        FrameCacheWriter(tmp_path, image_format="bmp")
    with pytest.raises(ValueError, match="equal length"):
        square.add("z", frames, np.array([0.0]), np.array([0, 1]), 20, 10.0)


def _write_many(cache_dir, writer_id, video_dir, names):
    writer = FrameCacheWriter(cache_dir, writer_id=writer_id, size=None)
    for name in names:
        cache_video(writer, name, video_dir / f"{name}.mp4")


def test_concurrent_writers_build_one_consistent_cache(tmp_path):
    names = [f"v{i}" for i in range(6)]
    for offset, name in enumerate(names):
        write_video(tmp_path / f"{name}.mp4", num_frames=20 + 5 * offset)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_many, args=(tmp_path / "cache", f"shard{i}", tmp_path, names[i::2]))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    cache = FrameCache(tmp_path / "cache")
    assert sorted(cache.entries) == names
    for name in names:
        _, timestamps = cache.sample(name, fps=1.0)
        np.testing.assert_allclose(timestamps, load_video(tmp_path / f"{name}.mp4", fps=1.0)[1])


def test_inference_cli_reads_frames_from_the_cache(tmp_path, make_video, tiny_checkpoint, monkeypatch, capsys):
    from modeling_prolongvid import infer
    from processing import frame_cache

    path, cache_dir = make_video("a.mp4", num_frames=200, fps=10), tmp_path / "cache"
    FrameCacheWriter(cache_dir, writer_id="w0", size=24).add_video("a", path)  # the tiny model's frames: 24 px

    def no_decoding(*args, **kwargs):
        raise AssertionError("the CLI decoded the video although the cache holds it")

    monkeypatch.setattr(frame_cache, "load_video", no_decoding)
    argv = ["--model", str(tiny_checkpoint), "--video", str(path), "--question", "What?", "--frames", "32",
            "--max-new-tokens", "2", "--frame-cache", str(cache_dir), "--video-id", "a"]  # fmt: skip
    assert infer.main(argv) == 0
    with pytest.raises(AssertionError, match="decoded the video"):
        infer.main([*argv[:-4], "--frame-cache", str(cache_dir), "--video-id", "not-cached"])


def test_index_lines_stay_small_whatever_the_video_length(tmp_path):
    """Per-frame data lives in the shard record, so 300K videos index in tens of MB, not gigabytes."""
    writer = FrameCacheWriter(tmp_path, writer_id="w", size=8)
    frames = np.zeros((1200, 8, 8, 3), np.uint8)  # a 20-minute video at 1 fps
    writer.add("long", frames, np.arange(1200.0), np.arange(0, 36000, 30), 36000, 30.0)
    (line,) = (tmp_path / "index-w.jsonl").read_text().splitlines()
    assert len(line) < 400
    cached, timestamps = FrameCache(tmp_path).read("long", [0, 1199])
    assert cached.shape == (2, 8, 8, 3) and timestamps.tolist() == [0.0, 1199.0]


# --- the frames training samples ----------------------------------------------------------------------------------


@pytest.fixture
def stage_video(make_video):
    """20 s at 10 fps: a stage-1 video (< 2 min, 32 frames), whose 32 linspace frames are mostly off the 1-fps grid."""
    return make_video("clip.mp4", num_frames=200, fps=10, width=96, height=64)


def test_add_video_caches_the_stage_frames_exactly_as_training_decodes_them(tmp_path, stage_video):
    writer = FrameCacheWriter(tmp_path / "cache", writer_id="w0", image_format="png")
    writer.add_video("clip", stage_video)
    cache = FrameCache(tmp_path / "cache")
    frames, timestamps = cache.sample("clip", num_frames=32, size=384)
    decoded_frames, decoded_timestamps = load_video(stage_video, num_frames=32, size=384)
    np.testing.assert_array_equal(timestamps, decoded_timestamps)  # the same frames at the same timestamps
    np.testing.assert_array_equal(frames, decoded_frames)  # lossless format: the same pixels (PIL from native)
    assert len(np.unique(timestamps)) == 32
    one_fps, one_fps_timestamps = cache.sample("clip", fps=1.0, size=384)
    np.testing.assert_array_equal(one_fps, load_video(stage_video, fps=1.0, size=384)[0])
    np.testing.assert_array_equal(one_fps_timestamps, np.arange(20.0))


def test_add_video_returns_exactly_what_load_video_returns(tmp_path, stage_video):
    frames, timestamps = FrameCacheWriter(tmp_path / "cache", writer_id="w0").add_video(
        "clip", stage_video, fps=1.0, size=(40, 60)
    )
    expected_frames, expected_timestamps = load_video(stage_video, fps=1.0, size=(40, 60))
    np.testing.assert_array_equal(frames, expected_frames)
    np.testing.assert_array_equal(timestamps, expected_timestamps)


def test_training_reads_cached_stage_frames_within_the_measured_jpeg_error(tmp_path, stage_video, monkeypatch):
    from processing import frame_cache

    FrameCacheWriter(tmp_path / "cache", writer_id="w0").add_video("clip", stage_video)
    decoded, decoded_timestamps = load_video(stage_video, num_frames=32, size=384)
    monkeypatch.setattr(frame_cache, "load_video", lambda *args, **kwargs: pytest.fail("decoded a cached sample"))
    frames, timestamps = load_frames(
        stage_video, "clip", num_frames=32, cache=FrameCache(tmp_path / "cache"), size=384
    )
    np.testing.assert_array_equal(timestamps, decoded_timestamps)
    error = pixel_error(frames, decoded)
    assert error.mean < 1.5 and error.max <= 16, error


def test_cached_frames_of_another_size_are_decoded_instead(tmp_path, stage_video):
    FrameCacheWriter(tmp_path / "cache", writer_id="w0", size=32).add_video("clip", stage_video)
    with pytest.raises(FrameCacheMiss, match="cached at"):
        FrameCache(tmp_path / "cache").sample("clip", num_frames=32, size=384)
    frames, _ = load_frames(stage_video, "clip", num_frames=32, cache=FrameCache(tmp_path / "cache"), size=384)
    assert frames.shape == (32, 384, 384, 3)


def test_add_video_caches_the_frame_counts_asked_for(tmp_path, stage_video):
    FrameCacheWriter(tmp_path / "cache", writer_id="w0", size=24).add_video("clip", stage_video, num_frames=[4, 7])
    cache = FrameCache(tmp_path / "cache")
    for count in (4, 7):
        _, timestamps = cache.sample("clip", num_frames=count)
        np.testing.assert_array_equal(timestamps, load_video(stage_video, num_frames=count, size=24)[1])
    with pytest.raises(FrameCacheMiss):
        cache.sample("clip", num_frames=32)


def test_a_cache_that_cannot_be_written_does_not_fail_the_video(tmp_path, stage_video, monkeypatch, caplog):
    writer = FrameCacheWriter(tmp_path / "cache", writer_id="w0")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write", full_disk)
    with caplog.at_level(logging.WARNING):
        frames, _ = writer.add_video("clip", stage_video, size=48)
    assert frames.shape == (20, 48, 48, 3) and "not added to the frame cache" in caplog.text


@pytest.mark.parametrize("seconds", [1, 60, 119.9, 120, 200, 299.9, 300, 600, 1199.9, 1200, 1200.5, 3600])
def test_stage_bands_match_the_dataset_builders_stages(seconds):
    from dataset_builder.schemas import stage_of

    frames = {"stage1": 32, "stage2": 128, "stage3": 192, None: None}[stage_of(seconds)]
    assert stage_num_frames(seconds) == frames


def test_the_default_quality_keeps_cached_frames_close_to_decoded_ones(tmp_path):
    """Coloured scenes with stripes and noise (harder than most video for JPEG): the measured error stays small."""
    path = tmp_path / "scenes.mp4"
    write_scene_video(path, [3, 3, 3], fps=4, size=192)
    FrameCacheWriter(tmp_path / "cache", writer_id="w0").add_video("scenes", path)
    cache = FrameCache(tmp_path / "cache")
    frames, _ = cache.sample("scenes", num_frames=32, size=384)
    entry = cache.entries["scenes"]
    error = pixel_error(frames, load_video(path, num_frames=32, size=384)[0], entry.length)
    assert error.mean < 2.5 and error.p99 <= 12, error
