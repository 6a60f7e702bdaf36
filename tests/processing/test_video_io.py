"""Tests for processing/: the right frames, the right timestamps, both backends, clear errors, keyframe seeking.

Every test video is generated here with PyAV. Each frame shows its own index as 12 black/white stripes (bit ``b`` of
the index is stripe ``b``), which survives lossy coding and resizing, so a test can read back which frame it got.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import processing.video_reader as video_reader
from processing import VideoReadError, load_video, probe_video
from processing.frame_index import build_frame_index
from processing.frame_sampling import sample_frame_indices
from processing.pixels import FrameArray
from processing.pyav_backend import decode_frames_pyav

BITS = 12
WIDTH, HEIGHT = 192, 96
FPS = 30
NUM_FRAMES = 90
GOP = 30

try:
    import decord  # noqa: F401

    HAS_DECORD = True
except ImportError:
    HAS_DECORD = False

needs_decord = pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed")


def striped_frame(index: int) -> np.ndarray:
    bits = (index >> np.arange(BITS)) & 1
    row = np.repeat(bits.astype(np.uint8) * 255, WIDTH // BITS)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (HEIGHT, WIDTH, 3)))


def frame_ids(frames: np.ndarray) -> list[int]:
    """Read the index drawn into each frame of ``frames (T, H, W, 3)``, whatever its size."""
    _, height, width, _ = frames.shape
    centers = ((np.arange(BITS) + 0.5) * width / BITS).astype(int)
    bits = frames[:, height // 2, centers].mean(axis=-1) > 127
    return (bits * (1 << np.arange(BITS))).sum(axis=1).tolist()


def write_video(
    path: Path,
    codec: str = "libx264",
    container_format: str | None = None,
    num_frames: int = NUM_FRAMES,
    pts_ms: list[int] | None = None,
) -> Path:
    """Encode striped frames; ``pts_ms`` gives explicit (variable) frame times in milliseconds."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = GOP
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "bf": "2", "sc_threshold": "0"}
        if pts_ms is not None:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(striped_frame(index), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], stream.codec_context.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


VFR_PTS_MS = np.cumsum([0] + [20 if i % 3 else 70 for i in range(1, NUM_FRAMES)]).tolist()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    files = {
        "mp4": write_video(root / "clip.mp4"),
        "mkv": write_video(root / "clip.mkv"),
        "ts": write_video(root / "clip.ts", container_format="mpegts"),
        "vfr": write_video(root / "vfr.mp4", pts_ms=VFR_PTS_MS),
    }
    if "libvpx-vp9" in av.codecs_available:
        files["webm"] = write_video(root / "clip.webm", codec="libvpx-vp9")
    return files


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> dict[str, Path]:
    """40 s at 30 fps with a keyframe every 30 frames: long enough that sparse samples should seek."""
    root = tmp_path_factory.mktemp("long")
    return {
        "mp4": write_video(root / "long.mp4", num_frames=1200),
        "ts": write_video(root / "long.ts", container_format="mpegts", num_frames=1200),
    }


CFR_FORMATS = ["mp4", "mkv", "ts", "webm"]


def video(videos: dict[str, Path], name: str) -> Path:
    if name not in videos:
        pytest.skip(f"PyAV cannot encode {name} here")
    return videos[name]


# --- which frames come back ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CFR_FORMATS)
def test_probe_counts_frames_exactly(videos, name):
    info = probe_video(video(videos, name))
    assert (info.num_frames, info.width, info.height) == (NUM_FRAMES, WIDTH, HEIGHT)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(NUM_FRAMES / FPS, abs=2e-3)


@pytest.mark.parametrize("name", CFR_FORMATS)
def test_num_frames_returns_uniform_frames_with_pts_timestamps(videos, name):
    frames, timestamps = load_video(video(videos, name), num_frames=7)
    expected = sample_frame_indices(NUM_FRAMES, num_frames=7)
    assert frames.dtype == np.uint8 and frames.shape == (7, HEIGHT, WIDTH, 3)
    assert timestamps.dtype == np.float64
    assert frame_ids(frames) == expected.tolist()
    np.testing.assert_allclose(timestamps, expected / FPS, atol=1e-3)  # Matroska stores milliseconds


def test_all_frames_by_default(videos):
    frames, timestamps = load_video(videos["mp4"])
    assert frame_ids(frames) == list(range(NUM_FRAMES))
    assert np.all(np.diff(timestamps) > 0)


def test_fps_sampling_takes_every_nth_frame(videos):
    frames, timestamps = load_video(videos["mp4"], fps=3)
    assert frame_ids(frames) == list(range(0, NUM_FRAMES, 10))
    np.testing.assert_allclose(timestamps, np.arange(0, 3, 1 / 3), atol=1e-6)


def test_fps_sampling_switches_to_uniform_above_max_frames(videos):
    frames, _ = load_video(videos["mp4"], fps=3, max_frames=4)
    assert frame_ids(frames) == [0, 29, 59, 89]


def test_more_frames_than_the_clip_has_repeats_frames_like_upstream(videos):
    frames, timestamps = load_video(videos["mp4"], num_frames=120)
    expected = sample_frame_indices(NUM_FRAMES, num_frames=120)
    assert len(frames) == 120 and frame_ids(frames) == expected.tolist()
    np.testing.assert_allclose(timestamps, expected / FPS, atol=1e-6)


@pytest.mark.parametrize("name", ["mp4", "ts"])
def test_window_samples_only_frames_between_start_and_end(videos, name):
    frames, timestamps = load_video(videos[name], num_frames=4, start=1.0, end=2.0)
    assert frame_ids(frames) == (30 + sample_frame_indices(31, num_frames=4)).tolist()
    assert timestamps[0] == pytest.approx(1.0) and timestamps[-1] == pytest.approx(2.0)

    frames, timestamps = load_video(videos[name], fps=2, start=0.5)
    assert frame_ids(frames) == list(range(15, NUM_FRAMES, 15))
    np.testing.assert_allclose(timestamps, np.arange(0.5, 3, 0.5), atol=1e-6)


def test_variable_frame_rate_timestamps_come_from_pts(videos):
    frames, timestamps = load_video(videos["vfr"])
    assert frame_ids(frames) == list(range(NUM_FRAMES))
    np.testing.assert_allclose(timestamps, np.asarray(VFR_PTS_MS) / 1000, atol=1e-6)
    frames, timestamps = load_video(videos["vfr"], start=0.5, end=1.0)
    expected = [i for i, ms in enumerate(VFR_PTS_MS) if 500 <= ms <= 1000]
    assert frame_ids(frames) == expected


@pytest.mark.parametrize("backend", ["pyav", "auto"])
@pytest.mark.parametrize("size, shape", [(48, (48, 48)), ((48, 96), (48, 96))])
def test_size_resizes_while_decoding(videos, backend, size, shape):
    frames, _ = load_video(videos["mp4"], num_frames=5, size=size, backend=backend)
    assert frames.shape == (5, *shape, 3)
    if shape[1] == 96:  # wide enough for the stripes to be read back
        assert frame_ids(frames) == sample_frame_indices(NUM_FRAMES, num_frames=5).tolist()


# --- decord and PyAV agree ----------------------------------------------------------------------------------------


@needs_decord
@pytest.mark.parametrize("name", ["mp4", "mkv", "vfr"])
@pytest.mark.parametrize("size", [None, (48, 96)])
def test_decord_and_pyav_return_the_same_frames(videos, name, size):
    decord_frames, decord_times = load_video(videos[name], num_frames=11, size=size, backend="decord")
    pyav_frames, pyav_times = load_video(videos[name], num_frames=11, size=size, backend="pyav")
    assert frame_ids(decord_frames) == frame_ids(pyav_frames)
    np.testing.assert_array_equal(decord_times, pyav_times)
    np.testing.assert_array_equal(decord_frames, pyav_frames)  # same RGB conversion, then the same PIL resize


@needs_decord
@pytest.mark.parametrize("name", ["mp4", "mkv", "vfr"])
def test_decords_own_timestamps_match_the_demux_index(videos, name):
    import decord

    reader = decord.VideoReader(str(videos[name]))
    own = reader.get_frame_timestamp(list(range(len(reader))))[:, 0].astype(np.float64)
    np.testing.assert_allclose(own - own[0], build_frame_index(videos[name]).timestamps, atol=1e-4)


@pytest.mark.parametrize("name", ["ts", "webm"])
def test_auto_never_hands_decord_a_container_it_hangs_or_fails_on(videos, name, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decord must not be given this file")

    monkeypatch.setattr(video_reader, "decode_frames_decord", refuse)
    frames, _ = load_video(video(videos, name), num_frames=3)
    assert frame_ids(frames) == [0, 44, 89]
    with pytest.raises(ValueError, match="backend='decord' refused"):
        load_video(video(videos, name), num_frames=3, backend="decord")


@needs_decord
def test_any_output_size_is_decoded_by_decord_without_a_fallback(videos, monkeypatch, caplog):
    """decord decodes at the native size and PIL resizes: widths decord 0.6.0 cannot resize to are fine."""
    calls = []
    original = video_reader.decode_frames_decord
    monkeypatch.setattr(video_reader, "decode_frames_decord", lambda *args: calls.append(1) or original(*args))
    with caplog.at_level(logging.WARNING, logger="processing.video_reader"):
        frames, _ = load_video(videos["mp4"], num_frames=3, size=(24, 50))
    assert frames.shape[1:3] == (24, 50) and calls == [1] and caplog.text == ""


def test_auto_falls_back_to_pyav_when_decord_fails(videos, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(video_reader, "decode_frames_decord", broken)
    with caplog.at_level(logging.WARNING, logger="processing.video_reader"):
        frames, _ = load_video(videos["mp4"], num_frames=3)
    assert frame_ids(frames) == [0, 44, 89]
    assert "simulated decord failure" in caplog.text


# --- keyframe-aware seeking ---------------------------------------------------------------------------------------


def decode_pyav(index, positions):
    sink = FrameArray(len(positions), (index.height, index.width))
    return sink.frames, decode_frames_pyav(index, positions, sink)


def test_sparse_samples_seek_instead_of_decoding_everything(long_videos):
    index = build_frame_index(long_videos["mp4"])
    positions = sample_frame_indices(index.num_frames, num_frames=8)
    frames, stats = decode_pyav(index, positions)
    assert frame_ids(frames) == positions.tolist()
    assert stats.seeks >= 6
    assert stats.frames_decoded < index.num_frames // 4


def test_dense_samples_decode_straight_through(long_videos):
    index = build_frame_index(long_videos["mp4"])
    positions = sample_frame_indices(index.num_frames, avg_fps=FPS, fps=3)
    frames, stats = decode_pyav(index, positions)
    assert frame_ids(frames) == positions.tolist()
    assert stats.seeks == 0
    assert stats.frames_decoded == positions[-1] + 1  # stops after the last requested frame


def test_mpeg_ts_is_never_seeked_yet_returns_the_right_frames(long_videos):
    index = build_frame_index(long_videos["ts"])
    positions = sample_frame_indices(index.num_frames, num_frames=8)
    frames, stats = decode_pyav(index, positions)
    assert frame_ids(frames) == positions.tolist() and stats.seeks == 0


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_sparse_window_of_a_long_video(long_videos, backend):
    frames, timestamps = load_video(long_videos["mp4"], num_frames=5, start=10.0, end=30.0, backend=backend)
    expected = 300 + sample_frame_indices(601, num_frames=5)
    assert frame_ids(frames) == expected.tolist()
    np.testing.assert_allclose(timestamps, expected / FPS, atol=1e-6)


# --- bad files and bad arguments ----------------------------------------------------------------------------------


def write_bad_file(kind: str, root: Path, good: Path) -> Path:
    if kind == "missing":
        return root / "missing.mp4"
    if kind == "empty":
        path = root / "empty.mp4"
        path.write_bytes(b"")
    elif kind == "text":
        path = root / "notes.mp4"
        path.write_text("this is a text file renamed to .mp4\n" * 20)
    elif kind == "garbage":
        path = root / "garbage.mp4"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    elif kind in ("truncated-mp4", "truncated-mkv"):
        source = good.with_suffix(".mp4" if kind == "truncated-mp4" else ".mkv")
        data = source.read_bytes()
        path = root / f"truncated{source.suffix}"
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zero-frames":
        path = root / "zero.avi"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            stream.codec_context.open()
            container.start_encoding()
    elif kind == "audio-only":
        path = root / "tone.wav"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("pcm_s16le", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate = 8000
            container.mux(stream.encode(frame))
            container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("missing", "file not found"),
        ("empty", "empty"),
        ("text", "not a readable video"),
        ("garbage", "not a readable video"),
        ("truncated-mp4", "not a readable video"),
        ("truncated-mkv", "truncated"),
        ("zero-frames", "no frames"),
        ("audio-only", "no video stream"),
    ],
)
@pytest.mark.parametrize("reader", ["probe", "load"])
def test_unreadable_files_raise_video_read_error_naming_file_and_problem(videos, tmp_path, kind, problem, reader):
    path = write_bad_file(kind, tmp_path, videos["mp4"])
    with pytest.raises(VideoReadError) as raised:
        probe_video(path) if reader == "probe" else load_video(path, num_frames=4)
    assert isinstance(raised.value, ValueError)
    assert str(path) in str(raised.value) and problem in str(raised.value)


def test_faststart_mp4_cut_short_is_reported_truncated(videos, tmp_path):
    path = tmp_path / "faststart.mp4"
    with av.open(str(videos["mp4"])) as source, av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated|corrupt"):
        load_video(path, num_frames=4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_frames": 4, "fps": 1.0}, "mutually exclusive"),
        ({"size": 0}, "`size`"),
        ({"size": (32, "x")}, "`size`"),
        ({"start": 2.0, "end": 1.0}, "start <= end"),
        ({"start": 50.0}, "no frames between"),
        ({"backend": "opencv"}, "`backend`"),
    ],
)
def test_bad_arguments_raise_value_error(videos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_video(videos["mp4"], **kwargs)
