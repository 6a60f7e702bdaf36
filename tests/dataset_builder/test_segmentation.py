"""Segmentation on hand-made features: the paper's similarity, the distance transform, delta, contiguity, baselines."""

import numpy as np
import pytest

from dataset_builder.segmentation import (
    DEFAULT_THRESHOLD,
    cluster_labels,
    contiguous_runs,
    distance_matrix,
    fixed_segments,
    merge_short_runs,
    segment_frames,
    similarity_matrix,
    whole_video,
)


def scenes(lengths, dim=8, noise=0.0, order=None, seed=0):
    """Features of consecutive scenes: scene k is basis vector ``order[k]`` plus noise."""
    rng = np.random.default_rng(seed)
    order = order or list(range(len(lengths)))
    rows = [np.eye(dim)[order[k]] for k, n in enumerate(lengths) for _ in range(n)]
    return np.array(rows) + rng.normal(0, noise, (sum(lengths), dim))


def test_similarity_matches_the_paper_formula_elementwise():
    rng = np.random.default_rng(1)
    image, caption = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    s = similarity_matrix(image, caption)
    fi = image / np.linalg.norm(image, axis=1, keepdims=True)
    fc = caption / np.linalg.norm(caption, axis=1, keepdims=True)
    for i in range(7):
        for j in range(7):
            expected = (fi[i] @ fi[j] + fi[i] @ fc[j]) / 2 + (2 - np.exp(abs(i - j) / 7))
            assert s[i, j] == pytest.approx(expected, abs=1e-5)
    assert not np.allclose(s, s.T), "the caption term makes s asymmetric"


def test_distance_is_two_minus_symmetrised_similarity():
    rng = np.random.default_rng(2)
    s = similarity_matrix(rng.normal(size=(6, 4)), rng.normal(size=(6, 4)))
    d = distance_matrix(s)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0) and np.all(d >= 0)
    assert d[0, 3] == pytest.approx(max(0.0, 2 - (s[0, 3] + s[3, 0]) / 2))


def test_temporal_term_pushes_identical_far_frames_apart():
    d = distance_matrix(similarity_matrix(np.ones((10, 3)), np.ones((10, 3))))
    assert np.all(np.diff(d[0]) > 0)
    assert d[0, 9] == pytest.approx(np.exp(0.9) - 1)


def test_three_scenes_recovered_at_default_threshold():
    features = scenes([20, 30, 25], noise=0.05)
    segments = segment_frames(features, features, np.arange(75.0), 75.0)
    assert [(s.start, s.end) for s in segments] == [(0.0, 20.0), (20.0, 50.0), (50.0, 75.0)]
    assert DEFAULT_THRESHOLD == 0.7


def test_threshold_controls_granularity():
    # Two similar scenes (cosine 0.8) and a different one: a large delta merges the similar pair.
    a, b, c = np.eye(3)[0], 0.8 * np.eye(3)[0] + 0.6 * np.eye(3)[1], np.eye(3)[2]
    features = np.array([a] * 20 + [b] * 20 + [c] * 20)
    # Adjacent a|b frames are at distance ~0.22 (cosine 0.8), adjacent b|c frames at ~1.02 (orthogonal).
    counts = [len(segment_frames(features, features, np.arange(60.0), 60.0, threshold=t)) for t in (0.5, 0.7, 2.0)]
    assert counts == [3, 2, 1]


def test_segments_are_contiguous_even_when_a_scene_returns():
    features = scenes([20, 20, 20], order=[0, 1, 0])
    labels = cluster_labels(distance_matrix(similarity_matrix(features, features)), 1.2)
    assert labels[0] == labels[-1] != labels[30], "the clustering itself groups the returning scene"
    segments = segment_frames(features, features, np.arange(60.0), 60.0, threshold=1.2)
    assert [(s.start, s.end) for s in segments] == [(0.0, 20.0), (20.0, 40.0), (40.0, 60.0)]
    assert segments[0].start == 0.0 and segments[-1].end == 60.0
    for left, right in zip(segments, segments[1:]):
        assert left.end == right.start and left.last_frame + 1 == right.first_frame


def test_contiguous_runs_and_short_run_merge():
    assert contiguous_runs(np.array([0, 0, 1, 0, 0, 2])) == [(0, 1), (2, 2), (3, 4), (5, 5)]
    features = scenes([10, 1, 10])  # a one-frame blip
    d = distance_matrix(similarity_matrix(features, features))
    runs = [(0, 9), (10, 10), (11, 20)]
    merged = merge_short_runs(runs, d, np.arange(21.0), 21.0, min_seconds=2.0)
    assert len(merged) == 2 and merged[0][0] == 0 and merged[-1][1] == 20
    assert merge_short_runs(runs, d, np.arange(21.0), 21.0, min_seconds=0.5) == runs


def test_fixed_baseline_ten_second_segments():
    segments = fixed_segments(np.arange(95.0), 95.0)
    assert [(s.start, s.end) for s in segments][:2] == [(0.0, 10.0), (10.0, 20.0)]
    assert len(segments) == 10 and segments[-1].end == 95.0 and segments[-1].first_frame == 90


def test_whole_video_and_bad_input():
    assert [(s.start, s.end) for s in whole_video(np.arange(30.0), 30.0)] == [(0.0, 30.0)]
    with pytest.raises(ValueError, match="all-zero"):
        similarity_matrix(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="same shape"):
        similarity_matrix(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="timestamps"):
        segment_frames(np.ones((3, 2)), np.ones((3, 2)), np.arange(4.0), 4.0)
