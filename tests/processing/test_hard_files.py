"""Valid files the readers used to get wrong: rotated phone videos, Matroska/WebM whose timestamps start late, an
MPEG-TS cut in the middle of a GOP. Each is generated here with PyAV; each frame shows its own index as black/white
stripes (as in ``test_video_io.py``) and a bright corner block, so a test can read back which frame it got and which
way up it is.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from processing import load_video, probe_video

BITS = 8
WIDTH, HEIGHT = 128, 64
FPS = 30
NUM_FRAMES = 60

try:
    import decord  # noqa: F401

    HAS_DECORD = True
except ImportError:
    HAS_DECORD = False

can_rotate = pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"), reason="this PyAV cannot write a display matrix"
)


def coded_frame(index: int) -> np.ndarray:
    """Stripes (bit ``b`` of ``index`` is stripe ``b``) over the lower half; a white block in the top-left corner."""
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    bits = (index >> np.arange(BITS)) & 1
    frame[HEIGHT // 2 :] = np.repeat(bits.astype(np.uint8) * 255, WIDTH // BITS)[None, :, None]
    frame[: HEIGHT // 4, : WIDTH // 8] = 255
    return frame


def frame_ids(frames: np.ndarray) -> list[int]:
    """The index drawn into each coded-orientation frame of ``frames (T, H, W, 3)``."""
    _, height, width, _ = frames.shape
    centers = ((np.arange(BITS) + 0.5) * width / BITS).astype(int)
    bits = frames[:, 3 * height // 4, centers].mean(axis=-1) > 127
    return (bits * (1 << np.arange(BITS))).sum(axis=1).tolist()


def write(path: Path, codec="libx264", container_format=None, first_pts=0, rotation=None, hflip=False, vflip=False):
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = 30
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "bf": "2", "sc_threshold": "0"}
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for index in range(NUM_FRAMES):
            frame = av.VideoFrame.from_ndarray(coded_frame(index), format="rgb24")
            frame.pts, frame.time_base = first_pts + index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def as_displayed(frame: np.ndarray, rotation: int, hflip: bool = False, vflip: bool = False) -> np.ndarray:
    """What a player shows, by PyAV's definition of `set_display_rotation`: rotate counter-clockwise by `rotation`
    degrees, then mirror."""
    frame = np.rot90(frame, k=rotation // 90)
    frame = frame[:, ::-1] if hflip else frame
    return frame[::-1] if vflip else frame


# --- rotated phone videos ------------------------------------------------------------------------------------------


@can_rotate
@pytest.mark.parametrize("container", ["mp4", "mkv", "mov"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_come_back_as_a_player_shows_them(tmp_path, container, rotation):
    path = write(tmp_path / f"phone.{container}", rotation=rotation)
    expected = np.stack([as_displayed(coded_frame(i), rotation) for i in (0, 29, 59)])
    info = probe_video(path)
    assert (info.height, info.width) == expected.shape[1:3]
    for backend in ["auto", "pyav"] + (["decord"] if HAS_DECORD and container != "mkv" else []):
        if backend == "decord":  # decord rotates some containers and not others: it is never given a rotated file
            with pytest.raises(ValueError, match="rotat"):
                load_video(path, num_frames=3, backend=backend)
            continue
        frames, _ = load_video(path, num_frames=3, backend=backend)
        assert frames.shape == expected.shape
        assert np.abs(frames.astype(int) - expected).mean() < 4, backend
        resized, _ = load_video(path, num_frames=3, size=(48, 40), backend=backend)
        assert resized.shape == (3, 48, 40, 3)
        assert np.abs(resized.astype(int) - [np.asarray(_pil_resize(f, (48, 40))) for f in frames]).max() <= 1


@can_rotate
@pytest.mark.parametrize(("rotation", "hflip", "vflip"), [(0, True, False), (0, False, True), (90, True, False)])
def test_mirrored_display_matrices_are_applied_too(tmp_path, rotation, hflip, vflip):
    path = write(tmp_path / "mirror.mp4", rotation=rotation, hflip=hflip, vflip=vflip)
    frames, _ = load_video(path, num_frames=2)
    expected = np.stack([as_displayed(coded_frame(i), rotation, hflip, vflip) for i in (0, 59)])
    assert frames.shape == expected.shape and np.abs(frames.astype(int) - expected).mean() < 4


@can_rotate
@pytest.mark.skipif(not HAS_DECORD, reason="decord is not installed")
def test_our_rotation_agrees_with_decords_own_on_mp4(tmp_path):
    """decord 0.6.0 applies an MP4's rotation itself (not Matroska's): an independent reading of the matrix."""
    import decord

    path = write(tmp_path / "phone.mp4", rotation=90)
    theirs = decord.VideoReader(str(path))[10].asnumpy()
    ours, _ = load_video(path, num_frames=1, start=10 / FPS, end=10 / FPS)
    np.testing.assert_array_equal(ours[0], theirs)


def _pil_resize(frame: np.ndarray, size: tuple[int, int]):
    from PIL import Image

    return Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BICUBIC)


# --- timestamps that start late -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "codec"), [("late.mkv", "libx264"), ("late.webm", "libvpx-vp9")])
def test_matroska_and_webm_starting_at_5_s_are_read_not_called_truncated(tmp_path, name, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV cannot encode {codec} here")
    path = write(tmp_path / name, codec=codec, first_pts=5 * FPS)
    info = probe_video(path)
    assert info.num_frames == NUM_FRAMES and info.duration == pytest.approx(NUM_FRAMES / FPS, abs=2e-3)
    frames, timestamps = load_video(path, num_frames=4)
    expected = np.linspace(0, NUM_FRAMES - 1, 4, dtype=int)
    assert frame_ids(frames) == expected.tolist()
    np.testing.assert_allclose(timestamps, expected / FPS, atol=1e-3)


def test_matroska_starting_late_and_cut_short_is_still_reported_truncated(tmp_path):
    source = write(tmp_path / "late.mkv", first_pts=5 * FPS)
    with av.open(str(source)) as container:
        declared = container.duration
    data = source.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    assert declared > 0
    with pytest.raises(ValueError, match="truncated"):
        probe_video(cut)


# --- MPEG-TS that starts in the middle of a GOP -------------------------------------------------------------------


def cut_transport_stream(source: Path, target: Path, fraction: float) -> Path:
    """Drop the first ``fraction`` of the 188-byte TS packets: the file now starts inside a GOP."""
    data = source.read_bytes()
    start = int(len(data) // 188 * fraction) * 188
    target.write_bytes(data[start:])
    return target


def frames_ffmpeg_decodes(path: Path) -> list[int]:
    """Frame ids FFmpeg's decoder outputs when it plays the file from the start (what `ffmpeg -i` shows)."""
    with av.open(str(path)) as container:
        return [frame_ids(frame.to_ndarray(format="rgb24")[None])[0] for frame in container.decode(video=0)]


@pytest.mark.parametrize("fraction", [0.2, 0.45])
def test_mpeg_ts_starting_mid_gop_decodes_the_frames_ffmpeg_plays(tmp_path, fraction):
    path = cut_transport_stream(write(tmp_path / "full.ts", container_format="mpegts"), tmp_path / "cut.ts", fraction)
    played = frames_ffmpeg_decodes(path)
    assert 0 < len(played) < NUM_FRAMES and played == list(range(played[0], NUM_FRAMES))
    info = probe_video(path)
    assert info.num_frames == len(played)
    frames, timestamps = load_video(path)
    assert frame_ids(frames) == played
    np.testing.assert_allclose(timestamps, np.arange(len(played)) / FPS, atol=1e-3)
    frames, _ = load_video(path, num_frames=5)
    assert frame_ids(frames) == [played[i] for i in np.linspace(0, len(played) - 1, 5, dtype=int)]
