"""The world's frame models make the kit's semantic segmentation (its defaults) recover the scene changes, not the
objects' entries or the flashes; segmentation_recovery is checked by hand-worked cases."""

import numpy as np
import pytest

from dataset_builder.frame_models import FrameCaptioner, FrameEmbedder
from dataset_builder.segmentation import DEFAULT_THRESHOLD, segment_frames
from dataset_builder.world.perception import WorldFrameCaptioner, WorldFrameEmbedder, segmentation_recovery
from dataset_builder.world.render import render_frame, write_world_video
from dataset_builder.world.timeline import FrameState, build_timeline, sample_timeline
from processing import load_video


def recover(timelines, folder, threshold=DEFAULT_THRESHOLD):
    """``(precision, recall, predicted boundaries, true cuts)`` over the videos, pooled."""
    captioner, embedder = WorldFrameCaptioner(), WorldFrameEmbedder()
    predicted, cuts = [], []
    for k, timeline in enumerate(timelines):
        frames, times = load_video(write_world_video(folder / f"{k}.mp4", timeline), fps=1.0)
        image_features = embedder.embed_images(frames)
        caption_features = embedder.embed_texts(captioner.caption(frames))
        segments = segment_frames(image_features, caption_features, times, timeline.duration, threshold=threshold)
        predicted += [s.start + 10_000 * k for s in segments[1:]]  # videos apart so no cut matches another video's
        cuts += [s.start + 10_000 * k for s in timeline.scenes[1:]]
    return (*segmentation_recovery(predicted, cuts), predicted, cuts)


def test_protocols_and_one_space():
    captioner, embedder = WorldFrameCaptioner(), WorldFrameEmbedder()
    assert isinstance(captioner, FrameCaptioner) and isinstance(embedder, FrameEmbedder)
    frames = np.stack([render_frame(FrameState(b)) for b in ("navy", "navy", "olive")])
    images, texts = embedder.embed_images(frames), embedder.embed_texts(captioner.caption(frames))
    np.testing.assert_allclose(images, texts, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-6)
    assert images[0] @ images[1] == pytest.approx(1.0) and images[0] @ images[2] == pytest.approx(0.0)


def test_scene_changes_are_recovered_and_objects_and_flashes_do_not_cut(tmp_path):
    specs = ((1, 95.0), (2, 150.0), (7, 250.0), (3, 330.0), (8, 70.0))
    timelines = [build_timeline(seed, duration) for seed, duration in specs]
    assert sum(len(t.appearances) for t in timelines) == 11  # 22 entries and leavings that must not cut
    assert any(t.flashes for t in timelines) and any(len(t.scenes) == 1 for t in timelines)
    precision, recall, predicted, cuts = recover(timelines, tmp_path)
    assert (precision, recall) == (1.0, 1.0), (predicted, cuts)


@pytest.mark.slow
@pytest.mark.parametrize("threshold", [DEFAULT_THRESHOLD, 0.85])
def test_thirty_videos_of_all_bands(tmp_path, threshold):
    timelines = []
    for band in ("short", "medium", "long"):
        band_timelines = (sample_timeline(seed, band) for seed in range(100))
        timelines += [t for t in band_timelines if t.duration >= 60][:10]  # shorter videos are not segmented
    precision, recall, predicted, cuts = recover(timelines, tmp_path, threshold)
    print(f"threshold {threshold}: {len(timelines)} videos, {len(cuts)} cuts, {len(predicted)} boundaries: "
          f"precision {precision:.3f}, recall {recall:.3f}")  # fmt: skip
    assert precision >= 0.95 and recall >= 0.95


def test_segmentation_recovery_by_hand():
    assert segmentation_recovery([], []) == (1.0, 1.0)
    assert segmentation_recovery([], [10.0]) == (1.0, 0.0)
    assert segmentation_recovery([10.0], []) == (0.0, 1.0)
    assert segmentation_recovery([12.0], [10.0]) == (1.0, 1.0)  # 2 s away: within the tolerance
    assert segmentation_recovery([12.5], [10.0]) == (0.0, 0.0)
    # one boundary cannot serve two cuts: 11 matches 10 (nearer than 12), 12.9 is 0.9 from 12 -> both match
    assert segmentation_recovery([11.0, 12.9], [10.0, 12.0]) == (1.0, 1.0)
    assert segmentation_recovery([11.0], [10.0, 12.0]) == (1.0, 0.5)
