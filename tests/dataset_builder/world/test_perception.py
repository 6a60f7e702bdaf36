"""Perception is exact on encoded world videos: every frame, decoded and after the frame cache's JPEG at other sizes,
reads as the timeline's ground truth says (checked against ``Timeline.state_at``, not against perception)."""

import io

import numpy as np
import pytest
from PIL import Image

from dataset_builder.world.perception import Observation, frame_caption, parse_frame_caption, perceive
from dataset_builder.world.render import render_frame, write_world_video
from dataset_builder.world.timeline import OBJECT_COLOURS, SHAPES, Appearance, Flash, FrameState, build_timeline
from processing import load_video
from processing.frame_cache import FrameCache, FrameCacheWriter, load_frames

# (seed, duration) over the three bands (a flash in the long one): 4 videos, 542 frames; `-m slow` reads 12 more.
VIDEOS = ((0, 12.0), (2, 95.0), (3, 130.0), (5, 305.0))
MORE_VIDEOS = tuple((seed, duration) for seed, duration in enumerate((10, 30, 60, 119, 121, 200, 299, 300, 600, 900,
                                                                      1189, 450), start=10))  # fmt: skip


def expected(state: FrameState) -> tuple:
    if state.flash is not None:
        return (None, None, None, state.flash.colour)
    if state.appearance is None:
        return (state.background, None, None, None)
    return (state.background, state.appearance.shape, state.appearance.colour, None)


def read(observation: Observation) -> tuple:
    return (observation.background, observation.shape, observation.colour, observation.flash)


def check_frames(frames, times, timeline) -> int:
    wrong = []
    for frame, time in zip(frames, times):
        state, seen = timeline.state_at(float(time)), perceive(frame)
        if read(seen) != expected(state):
            wrong.append((float(time), expected(state), read(seen)))
        elif state.appearance is not None and abs(seen.position - state.position) > 0.05:
            wrong.append((float(time), state.position, seen.position))
    assert not wrong, f"{len(wrong)} of {len(frames)} frames misread (time, truth, read): {wrong[:5]}"
    return len(frames)


def write_videos(folder, specs):
    videos = []
    for seed, duration in specs:
        timeline = build_timeline(seed, float(duration))
        videos.append((f"v{seed}", write_world_video(folder / f"v{seed}.mp4", timeline), timeline))
    assert {timeline.band for _, _, timeline in videos} == {"short", "medium", "long"}
    assert any(timeline.flashes for _, _, timeline in videos)
    return videos


@pytest.fixture(scope="module")
def world_videos(tmp_path_factory):
    return write_videos(tmp_path_factory.mktemp("world"), VIDEOS)


def check_decoded(videos) -> int:
    total = 0
    for _, path, timeline in videos:
        frames, times = load_video(path, fps=1.0)
        assert len(frames) == round(timeline.duration)
        total += check_frames(frames, times, timeline)
    return total


def check_cached(videos, folder, size) -> None:
    writer = FrameCacheWriter(folder, writer_id="w", size=size)
    for video_id, path, _ in videos:
        writer.add_video(video_id, path, fps=1.0, size=(64, 64))
    cache = FrameCache(folder)
    for video_id, path, timeline in videos:
        frames, times = load_frames(path, video_id=video_id, fps=1.0, cache=cache, size=size)
        assert frames.shape[1:] == (size, size, 3)
        check_frames(frames, times, timeline)


def test_every_decoded_frame_reads_as_the_ground_truth(world_videos):
    assert check_decoded(world_videos) == 542


@pytest.mark.parametrize("size", [32, 48, 64, 384])
def test_frames_read_from_the_frame_cache_at_other_sizes(world_videos, tmp_path, size):
    """The frame cache's JPEG (quality 90, 4:4:4) after PIL bicubic resizing to ``size``; 384 on the two shortest."""
    check_cached(world_videos[:2] if size == 384 else world_videos, tmp_path / "cache", size)


@pytest.mark.slow
def test_twelve_more_videos_decoded_and_cached(tmp_path):
    videos = write_videos(tmp_path, MORE_VIDEOS)
    total = check_decoded(videos)
    for size in (32, 48, 64, 384):
        check_cached(videos, tmp_path / f"cache{size}", size)
    print(f"perception exact on {total} decoded frames of {len(videos)} videos, and cached at 32/48/64/384 px")


@pytest.mark.parametrize("quality", [75, 90])
def test_jpeg_as_sent_to_the_captioner(world_videos, quality):
    """The pipeline sends 4:2:0 JPEGs (PIL defaults, the annotator's quality 90); 75 still reads exactly."""
    _, path, timeline = world_videos[2]
    frames, times = load_video(path, fps=1.0)
    decoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    check_frames(decoded, times, timeline)


def test_every_shape_and_colour_at_the_edges_and_a_flash():
    for shape in SHAPES:
        for colour in OBJECT_COLOURS:
            for position in (0.0, 0.5, 1.0):
                state = FrameState("teal", Appearance(0.0, 1.0, shape, colour, True), position)
                seen = perceive(render_frame(state, size=40))
                assert (seen.shape, seen.colour) == (shape, colour)
                assert abs(seen.position - position) <= 0.05
    flash = perceive(render_frame(FrameState("navy", flash=Flash(0.0, 1.0, "yellow"))))
    assert flash == Observation(background=None, flash="yellow")


def test_frame_captions_read_back_and_bad_ones_are_named():
    for observation in (
        Observation("olive"),
        Observation("navy", "triangle", "white"),
        Observation(None, flash="red"),
    ):
        assert parse_frame_caption(frame_caption(observation)) == observation
    assert frame_caption(Observation("olive", "circle", "yellow")) == "A yellow circle on an olive background."
    with pytest.raises(ValueError, match="not a world frame caption"):
        parse_frame_caption("A dog on a sofa.")
    with pytest.raises(ValueError, match="'pink'"):
        parse_frame_caption("A pink circle on a navy background.")
