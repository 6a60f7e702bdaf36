"""How the segmentation threshold delta acts on generated videos with known cuts (the table in dataset_builder/README.md).

Videos come from ``processing.synthetic.write_scene_video`` (random scene lengths, so the cut times are known), are
decoded at 1 fps by ``processing.load_video`` and segmented by ``dataset_builder.segmentation.segment_frames`` at each
delta. The frame features are stand-ins with the two scales that matter (no checkpoint can be downloaded here):

* ``aligned``: the image feature is a frame's 3 x 3 grid of mean colours and the caption feature equals it, so
  ``f^I . f^C`` is as large as ``f^I . f^I`` -- an embedder whose caption and image features coincide.
* ``siglip-like``: the same image feature; the caption feature keeps only 0.15 of the image direction (the rest is
  noise orthogonal to every image feature), so a frame and its own caption have cosine ~0.15, as matching image-text
  pairs have under SigLIP's sigmoid loss (its decision boundary sits at a small positive cosine).

``--frame-captioner PATH --embedder PATH`` adds a third column with real models (e.g. Florence-2 and SigLIP). For each
delta: segments found / true scenes, and the boundary F1 (a found boundary within 1 s of a true cut counts).

Run: ``python benchmarks/segmentation_threshold.py [--videos 24] [--seed 0] [--thresholds 0.3 0.5 0.7 0.9 1.1]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset_builder.segmentation import DEFAULT_THRESHOLD, distance_matrix, segment_frames, similarity_matrix  # noqa: E402
from processing import load_video  # noqa: E402
from processing.synthetic import write_scene_video  # noqa: E402

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.3)
SIGLIP_LIKE_COSINE = 0.15
TOLERANCE_SECONDS = 1.0


def grid_features(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, 27)``: the mean colour of each cell of a 3 x 3 grid, scaled to [-1, 1]."""
    t, h, w, _ = frames.shape
    cells = [
        frames[:, i * h // 3 : (i + 1) * h // 3, j * w // 3 : (j + 1) * w // 3].reshape(t, -1, 3).mean(axis=1)
        for i in range(3)
        for j in range(3)
    ]
    return np.concatenate(cells, axis=1) / 127.5 - 1.0


def siglip_like_captions(
    image: np.ndarray, rng: np.random.Generator, cosine: float = SIGLIP_LIKE_COSINE
) -> np.ndarray:
    """Caption features with cosine ``cosine`` to their frame's image feature, the rest orthogonal noise. ``(T, 2D)``."""
    unit = image / np.linalg.norm(image, axis=1, keepdims=True)
    noise = rng.normal(size=image.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    padded = np.concatenate([unit, np.zeros_like(unit)], axis=1)  # image features live in the first D dimensions
    return cosine * padded + np.sqrt(1 - cosine**2) * np.concatenate([np.zeros_like(noise), noise], axis=1)


def make_videos(folder: Path, count: int, seed: int) -> list[tuple[Path, list[float], float]]:
    """``count`` videos of 3-7 scenes of 8-45 s each (60 s or longer, as segmentation needs): path, cuts, duration."""
    rng = np.random.default_rng(seed)
    videos = []
    for k in range(count):
        scenes = [float(s) for s in rng.integers(8, 46, size=rng.integers(3, 8))]
        if sum(scenes) < 60:
            scenes[-1] += 60 - sum(scenes)
        path = folder / f"video{k}.mp4"
        videos.append((path, write_scene_video(path, scenes, seed=seed + k), sum(scenes)))
    return videos


def boundary_f1(found: list[float], cuts: list[float], tolerance: float = TOLERANCE_SECONDS) -> float:
    """F1 of found boundaries against true cuts, each cut matched at most once within ``tolerance`` seconds."""
    unmatched, hits = list(cuts), 0
    for boundary in found:
        near = [cut for cut in unmatched if abs(cut - boundary) <= tolerance]
        if near:
            unmatched.remove(min(near, key=lambda cut: abs(cut - boundary)))
            hits += 1
    if not found and not cuts:
        return 1.0
    return 2 * hits / (len(found) + len(cuts))


def adjacent_distances(image: np.ndarray, caption: np.ndarray, timestamps: np.ndarray, cuts: list[float]):
    """Distances ``d = 2 - s`` between consecutive frames: ``(within a scene, across a cut)`` arrays."""
    distance = distance_matrix(similarity_matrix(image, caption))
    steps = np.diagonal(distance, offset=1)
    across = np.array([any(a < cut <= b for cut in cuts) for a, b in zip(timestamps[:-1], timestamps[1:])])
    return steps[~across], steps[across]


def sweep(videos, regimes: dict, thresholds=THRESHOLDS) -> dict[str, dict]:
    """``{regime: {"rows": {delta: (segments / scenes, mean F1)}, "within": d, "across": d}}`` over the videos.

    ``regimes`` maps a name to ``features(frames, rng) -> (image (T, D), caption (T, D))``.
    """
    decoded = [(load_video(path, fps=1.0, size=64), cuts, duration) for path, cuts, duration in videos]
    results = {}
    for name, features in regimes.items():
        rng = np.random.default_rng(0)
        per_video = [(features(frames, rng), times, cuts, duration) for (frames, times), cuts, duration in decoded]
        rows = {}
        for delta in thresholds:
            ratios, scores = [], []
            for (image, caption), timestamps, cuts, duration in per_video:
                segments = segment_frames(image, caption, timestamps, duration, threshold=delta)
                ratios.append(len(segments) / (len(cuts) + 1))
                scores.append(boundary_f1([s.start for s in segments[1:]], cuts))
            rows[delta] = (float(np.mean(ratios)), float(np.mean(scores)))
        gaps = [adjacent_distances(image, caption, times, cuts) for (image, caption), times, cuts, _ in per_video]
        results[name] = {
            "rows": rows,
            "within": float(np.median(np.concatenate([within for within, _ in gaps]))),
            "across": float(np.median(np.concatenate([across for _, across in gaps]))),
        }
    return results


def stand_in_regimes() -> dict:
    """The two stand-in feature scales of the module docstring: ``{name: features(frames, rng) -> (image, caption)}``."""

    def aligned(frames, rng):
        return grid_features(frames), grid_features(frames)

    def siglip_like(frames, rng):
        image = grid_features(frames)
        return np.concatenate([image, np.zeros_like(image)], axis=1), siglip_like_captions(image, rng)

    return {"aligned": aligned, "siglip-like": siglip_like}


def model_regime(captioner_path: str, embedder_path: str):
    """Features from real models: ``embed_images(frames)`` and ``embed_texts(caption(frames))``."""
    from dataset_builder.frame_models import Florence2Captioner, ImageTextEmbedder

    captioner, embedder = Florence2Captioner(captioner_path), ImageTextEmbedder(embedder_path)

    def features(frames, rng):
        return embedder.embed_images(frames), embedder.embed_texts(captioner.caption(frames))

    return features


def markdown(results: dict, thresholds=THRESHOLDS) -> str:
    names = list(results)
    lines = [
        "| delta | " + " | ".join(f"{name}: segments / scenes | {name}: boundary F1" for name in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for delta in thresholds:
        marker = " (default)" if delta == DEFAULT_THRESHOLD else ""
        cells = " | ".join(f"{results[n]['rows'][delta][0]:.2f} | {results[n]['rows'][delta][1]:.2f}" for n in names)
        lines.append(f"| {delta}{marker} | {cells} |")
    lines.append("")
    for name in names:
        lines.append(
            f"- {name}: median distance between consecutive frames {results[name]['within']:.3f} within a scene, "
            f"{results[name]['across']:.3f} across a cut"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the sweep as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--frame-captioner", default=None, help="with --embedder: add a column with real models")
    parser.add_argument("--embedder", default=None)
    args = parser.parse_args()
    regimes = stand_in_regimes()
    if args.frame_captioner and args.embedder:
        regimes["models"] = model_regime(args.frame_captioner, args.embedder)
    with tempfile.TemporaryDirectory() as folder:
        videos = make_videos(Path(folder), args.videos, args.seed)
        scenes = sum(len(cuts) + 1 for _, cuts, _ in videos)
        minutes = sum(duration for _, _, duration in videos) / 60
        print(f"{len(videos)} generated videos, {scenes} scenes (cuts known), {minutes:.0f} minutes, at 1 fps")
        print(markdown(sweep(videos, regimes, args.thresholds), args.thresholds))


if __name__ == "__main__":
    main()
