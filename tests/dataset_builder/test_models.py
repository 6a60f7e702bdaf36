"""The default frame models, tiny and random, loaded from local paths: batching, shapes, and the local stage."""

import numpy as np
import pytest

from dataset_builder.frame_models import FrameCaptioner, FrameEmbedder
from dataset_builder.local_stage import LocalSettings, run_local_stage
from dataset_builder.videos import FrameProvider, VideoItem, fingerprint
from processing.synthetic import write_scene_video
from tests.dataset_builder.fixtures import build_tiny_florence2, build_tiny_siglip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from dataset_builder.frame_models import Florence2Captioner, ImageTextEmbedder

    root = tmp_path_factory.mktemp("models")
    captioner = Florence2Captioner(str(build_tiny_florence2(root / "florence2")), batch_size=4, max_new_tokens=6)
    embedder = ImageTextEmbedder(str(build_tiny_siglip(root / "siglip")), batch_size=4)
    return captioner, embedder


def test_models_follow_the_protocols_and_batching_does_not_change_results(models):
    captioner, embedder = models
    assert isinstance(captioner, FrameCaptioner) and isinstance(embedder, FrameEmbedder)
    frames = np.random.default_rng(0).integers(0, 255, (10, 48, 80, 3), dtype=np.uint8)
    captions = captioner.caption(frames)
    assert len(captions) == 10 and all(isinstance(c, str) for c in captions)
    image = embedder.embed_images(frames)
    text = embedder.embed_texts(["a red ball"] * 3 + captions[:7])
    assert image.shape == (10, 16) and text.shape == (10, 16) and image.dtype == np.float32
    embedder.batch_size = 10
    np.testing.assert_allclose(embedder.embed_images(frames), image, atol=1e-5)


def test_semantic_local_stage_runs_with_the_default_model_classes(models, tmp_path):
    captioner, embedder = models
    write_scene_video(tmp_path / "long.mp4", [30, 31])
    item = VideoItem("long", str(tmp_path / "long.mp4"), "test")
    settings = LocalSettings(segmentation="semantic", frame_size=64)
    record, provider = run_local_stage(item, settings, fingerprint(item.path), FrameProvider, captioner, embedder)
    assert record.segmentation == "semantic" and len(record.timestamps) == 61
    segments = record.segments
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(61.0)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert record.frame_models == {"captioner": captioner.name, "embedder": embedder.name}
