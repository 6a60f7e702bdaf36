"""Temporal segmentation of a 1-fps frame sequence (paper section 3, "semantic segmentation").

Pure functions over NumPy arrays; no model or I/O here. Only NumPy is imported with the module; scikit-learn (seconds
to import) when :func:`cluster_labels` first runs.

Similarity (paper): for frames ``i, j`` of a video with ``N`` sampled frames, image features ``f^I`` and caption text
features ``f^C`` (both L2-normalised, shape ``(N, D)``)::

    s_ij = (f^I_i . f^I_j + f^I_i . f^C_j) / 2 + (2 - exp(|i - j| / N))

``s`` is not symmetric (the caption term uses the caption of ``j`` only), so we symmetrise it with
``(s + s.T) / 2`` before clustering.

Distance transform (documented choice): ``d_ij = max(0, 2 - s_ij)`` with ``d_ii = 0``. ``2`` is the largest value
``s`` can take (identical frames whose caption embeds onto the image: ``(1 + 1) / 2 + 1``), so ``d`` measures how far a
pair is from "the same moment". The temporal term ``2 - exp(|i-j|/N)`` falls from 1 (same frame) to ``2 - e`` (the two
ends of the video), so distant frames are pushed apart even when they look alike: segments stay short and local.

Clustering: scikit-learn ``AgglomerativeClustering(metric="precomputed", linkage="average",
distance_threshold=0.7, n_clusters=None)``. Average linkage compares the *mean* pairwise distance of two clusters, which
keeps every entry of ``s`` in play (single linkage chains through look-alike neighbours; complete linkage is dominated by
one outlier frame). A connectivity graph is *not* used: with ``metric="precomputed"`` scikit-learn then only reads the
distances of connected pairs, which would throw away the long-range part of the formula.

Temporal contiguity (post-pass): every maximal run of consecutive frames with the same cluster label becomes one segment;
runs shorter than ``min_segment_seconds`` are merged into the adjacent segment they are closer to (mean distance).

Example:
    >>> import numpy as np
    >>> from dataset_builder.segmentation import segment_frames
    >>> feats = np.repeat(np.eye(3), 40, axis=0)            # three "scenes" of 40 frames each
    >>> segments = segment_frames(feats, feats, timestamps=np.arange(120.0), duration=120.0)
    >>> [(s.start, s.end) for s in segments]
    [(0.0, 40.0), (40.0, 80.0), (80.0, 120.0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.7
MIN_SEGMENTATION_SECONDS = 60.0
FIXED_SEGMENT_SECONDS = 10.0
DEFAULT_MIN_SEGMENT_SECONDS = 2.0
LINKAGE = "average"


@dataclass(frozen=True)
class Segment:
    """A half-open time span ``[start, end)`` in seconds and the sampled-frame index span ``[first, last]``."""

    start: float
    end: float
    first_frame: int
    last_frame: int


def _l2_normalise(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name} must have shape (num_frames, dim), got {features.shape}.")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} contains an all-zero feature vector; it cannot be L2-normalised.")
    return features / norms


def similarity_matrix(image_features: np.ndarray, caption_features: np.ndarray) -> np.ndarray:
    """The paper's frame similarity ``s`` (NOT symmetrised).

    Args:
        image_features: ``(N, D)`` image features ``f^I``; normalised here.
        caption_features: ``(N, D)`` caption text features ``f^C`` in the same space; normalised here.

    Returns:
        ``(N, N)`` float64 matrix ``s_ij = (f^I_i.f^I_j + f^I_i.f^C_j) / 2 + (2 - exp(|i-j| / N))``.
    """
    image = _l2_normalise(image_features, "image_features").astype(np.float32)
    caption = _l2_normalise(caption_features, "caption_features").astype(np.float32)
    if image.shape != caption.shape:
        raise ValueError(
            f"image_features {image.shape} and caption_features {caption.shape} must have the same shape."
        )
    n = image.shape[0]
    offsets = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    temporal = 2.0 - np.exp(offsets / n)
    return (image @ (image + caption).T).astype(np.float64) / 2.0 + temporal


def distance_matrix(similarity: np.ndarray) -> np.ndarray:
    """``d = max(0, 2 - (s + s.T) / 2)`` with a zero diagonal: the precomputed metric for clustering. ``(N, N)``."""
    symmetric = (similarity + similarity.T) / 2.0
    distance = np.clip(2.0 - symmetric, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return distance


def cluster_labels(distance: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Agglomerative clustering of a precomputed ``(N, N)`` distance matrix; returns ``(N,)`` int labels."""
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}.")
    if distance.shape[0] < 2:
        return np.zeros(distance.shape[0], dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage=LINKAGE, distance_threshold=threshold
    )
    return model.fit_predict(distance).astype(np.int64)


def contiguous_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """Split ``(N,)`` labels into maximal runs of equal consecutive labels: ``[(first, last), ...]`` inclusive."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append((start, i - 1))
            start = i
    return runs


def merge_short_runs(
    runs: list[tuple[int, int]], distance: np.ndarray, timestamps: np.ndarray, duration: float, min_seconds: float
) -> list[tuple[int, int]]:
    """Merge runs shorter than ``min_seconds`` into the neighbour with the smaller mean distance, shortest first."""
    firsts = np.array([run[0] for run in runs], dtype=np.int64)
    lasts = np.array([run[1] for run in runs], dtype=np.int64)
    start_time = np.concatenate([[0.0], timestamps[1:]])
    end_time = np.concatenate([timestamps[1:], [duration]])
    while len(firsts) > 1:
        lengths = end_time[lasts] - start_time[firsts]
        k = int(np.argmin(lengths))
        if lengths[k] >= min_seconds:
            break
        own = slice(firsts[k], lasts[k] + 1)
        candidates = [n for n in (k - 1, k + 1) if 0 <= n < len(firsts)]
        best = min(candidates, key=lambda n: distance[own, firsts[n] : lasts[n] + 1].mean())
        lo, hi = min(k, best), max(k, best)
        lasts[lo] = lasts[hi]
        firsts, lasts = np.delete(firsts, hi), np.delete(lasts, hi)
    return list(zip(firsts.tolist(), lasts.tolist()))


def runs_to_segments(runs: list[tuple[int, int]], timestamps: np.ndarray, duration: float) -> list[Segment]:
    """Turn frame runs into time spans that tile ``[0, duration)``: a run ends where the next run's first frame starts."""
    segments = []
    for k, (first, last) in enumerate(runs):
        start = 0.0 if k == 0 else float(timestamps[first])
        end = float(duration) if k == len(runs) - 1 else float(timestamps[runs[k + 1][0]])
        segments.append(Segment(start=start, end=end, first_frame=first, last_frame=last))
    return segments


def segment_frames(
    image_features: np.ndarray,
    caption_features: np.ndarray,
    timestamps: np.ndarray,
    duration: float,
    threshold: float = DEFAULT_THRESHOLD,
    min_segment_seconds: float = DEFAULT_MIN_SEGMENT_SECONDS,
) -> list[Segment]:
    """Semantic segmentation of one video's sampled frames into temporally contiguous segments.

    Args:
        image_features: ``(N, D)`` image features of the 1-fps frames.
        caption_features: ``(N, D)`` text features of each frame's caption.
        timestamps: ``(N,)`` increasing frame times in seconds.
        duration: video length in seconds (the last segment ends here).
        threshold: agglomerative ``distance_threshold`` (delta); larger -> fewer, longer segments.
        min_segment_seconds: runs shorter than this are merged into a neighbour (0 disables).

    Returns:
        Segments in time order tiling ``[0, duration)``.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if len(timestamps) != len(image_features):
        raise ValueError(f"{len(timestamps)} timestamps for {len(image_features)} frames; pass one per frame.")
    if len(timestamps) == 0:
        raise ValueError("Cannot segment a video with no sampled frames.")
    distance = distance_matrix(similarity_matrix(image_features, caption_features))
    runs = contiguous_runs(cluster_labels(distance, threshold))
    if min_segment_seconds > 0:
        runs = merge_short_runs(runs, distance, timestamps, duration, min_segment_seconds)
    return runs_to_segments(runs, timestamps, duration)


def fixed_segments(timestamps: np.ndarray, duration: float, seconds: float = FIXED_SEGMENT_SECONDS) -> list[Segment]:
    """Fixed-length baseline (paper Table 8): consecutive ``seconds``-long spans; the last one may be shorter.

    Example:
        >>> [(s.start, s.end) for s in fixed_segments(np.arange(25.0), 25.0)]
        [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]
    """
    if seconds <= 0:
        raise ValueError(f"Fixed segment length must be > 0 s, got {seconds}.")
    timestamps = np.asarray(timestamps, dtype=np.float64)
    bins = np.floor(timestamps / seconds).astype(np.int64)
    return [
        Segment(
            start=float(bins[first] * seconds),
            end=float(min(duration, (bins[first] + 1) * seconds)),
            first_frame=first,
            last_frame=last,
        )
        for first, last in contiguous_runs(bins)
    ]


def whole_video(timestamps: np.ndarray, duration: float) -> list[Segment]:
    """Videos under ``MIN_SEGMENTATION_SECONDS`` are not segmented: one segment covering everything."""
    return [Segment(start=0.0, end=float(duration), first_frame=0, last_frame=max(0, len(timestamps) - 1))]
