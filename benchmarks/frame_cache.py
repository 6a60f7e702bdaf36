"""Frame cache fidelity, size and speed per image format and quality: what `--frame-cache-quality` trades.

Generates (once, cached in ``--workdir``) a 1280x720 30 fps H.264 clip that pans and zooms over natural photographs
(scikit-learn's sample images when installed, else a synthetic pattern), caches it as the annotator does
(``FrameCacheWriter.add_video``: the stage's linspace frames plus 1 fps, 384x384 PIL bicubic), then for each setting
reports the pixel error of the cached stage frames against decoding (``processing.frame_cache.pixel_error``), the
cache size per frame and against the source file, and the speed of reading the stage sample from the cache against
decoding it from the source (``load_video``).

Run:
    python benchmarks/frame_cache.py --minutes 1
    python benchmarks/frame_cache.py --minutes 3 --settings jpeg:95 jpeg:90 webp:90 png:0
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing import load_video, probe_video  # noqa: E402
from processing.frame_cache import (  # noqa: E402
    DEFAULT_QUALITY,
    FrameCache,
    FrameCacheWriter,
    pixel_error,
    stage_num_frames,
)

WIDTH, HEIGHT, FPS, GOP = 1280, 720, 30, 250


def photographs() -> list[np.ndarray]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        y, x = np.mgrid[0:480, 0:640].astype(np.float64)
        return [np.stack([127 + 120 * np.sin(x / (9 + 4 * c) + y / (13 + c)) for c in range(3)], -1).astype(np.uint8)]
    return list(load_sample_images().images)


def generate_clip(path: Path, minutes: float) -> Path:
    """Pans and slow zooms over each photograph in turn (10 s each), upscaled to 720p: camera-like motion and detail."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    images, partial = photographs(), path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(GOP), "bf": "3"}
        for index in range(round(minutes * 60 * FPS)):
            image = images[(index // (10 * FPS)) % len(images)]
            phase = (index % (10 * FPS)) / (10 * FPS)
            height, width = image.shape[:2]
            crop_h, crop_w = int(height * (0.8 - 0.2 * phase)), int(width * (0.8 - 0.2 * phase))
            top, left = int((height - crop_h) * phase), int((width - crop_w) * (1 - phase))
            crop = Image.fromarray(image[top : top + crop_h, left : left + crop_w]).resize((WIDTH, HEIGHT))
            container.mux(stream.encode(av.VideoFrame.from_image(crop)))
        container.mux(stream.encode())
    partial.rename(path)
    return path


def best_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prolongvid_bench/frame_cache"))
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the clip (its stage: 32/128/192 frames)")
    parser.add_argument(
        "--settings", nargs="+", default=["jpeg:80", "jpeg:90", f"jpeg:{DEFAULT_QUALITY}", "webp:90", "png:0"]
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the best is reported")
    args = parser.parse_args()

    clip = generate_clip(args.workdir / f"photos_{args.minutes:g}min_{WIDTH}x{HEIGHT}.mp4", args.minutes)
    info = probe_video(clip)
    frames = stage_num_frames(info.duration)
    print(f"{clip}: {info}; stage sample: {frames} frames", flush=True)
    decoded, _ = load_video(clip, num_frames=frames, size=384)
    decode_seconds = best_seconds(lambda: load_video(clip, num_frames=frames, size=384), args.repeats)

    print(f"\ndecoding the stage sample: {decode_seconds:.2f} s (best of {args.repeats})")
    print("| setting | mean abs error | p99 | max | KB / frame | cache / source | read (s) | decode / read |")
    print("|---|---|---|---|---|---|---|---|")
    for setting in args.settings:
        image_format, quality = setting.split(":")
        cache_dir = args.workdir / f"cache_{image_format}_{quality}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        writer = FrameCacheWriter(
            cache_dir, writer_id="bench", image_format=image_format, quality=max(1, int(quality))
        )
        writer.add_video(clip.stem, clip)
        cache = FrameCache(cache_dir)
        cached, _ = cache.sample(clip.stem, num_frames=frames, size=384)
        entry = cache.entries[clip.stem]
        error = pixel_error(cached, decoded, entry.length * frames // entry.num_frames)
        read_seconds = best_seconds(lambda c=cache: c.sample(clip.stem, num_frames=frames, size=384), args.repeats)
        cache_bytes = sum(path.stat().st_size for path in cache_dir.iterdir())
        print(
            f"| {setting} | {error.mean:.2f} | {error.p99:.0f} | {error.max} | {error.bytes_per_frame / 1024:.1f} "
            f"| {cache_bytes / clip.stat().st_size:.1%} | {read_seconds:.3f} | {decode_seconds / read_seconds:.0f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
