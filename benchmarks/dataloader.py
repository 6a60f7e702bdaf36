"""Stage-2 data loader throughput: frames from the frame cache vs decoding the original videos (decord).

Generates (once, cached under --workdir) stage-2-like source videos of 2-5 minutes (1280x720, 30 fps, H.264 at a
web-typical bitrate, GOP 250), fills a frame cache the way `dataset_builder annotate` does (1 fps, 384x384, JPEG),
then times the recipes' `VideoSFTCollator` at 128 frames per sample with and without the cache, in one process.

```bash
python benchmarks/dataloader.py                     # 4 videos of 2-5 min (first run generates them: minutes)
python benchmarks/dataloader.py --minutes 2 2 --samples 2   # quick look
```

Prints samples/s of both paths and their ratio (target >= 20x), and the cache's bytes per video-minute against the
sources' (target: cache <= ~5% of the sources).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

from modeling_prolongvid.tiny_checkpoint import build_tiny_processor
from processing import load_video
from processing.frame_cache import DEFAULT_QUALITY, FrameCache, FrameCacheWriter, load_frames, pixel_error
from recipes.training.collator import VideoSFTCollator


def generate_video(path: Path, minutes: float, bitrate: str) -> None:
    """720p30 H.264 with B-frames and GOP 250; moving test pattern plus temporal noise, like camera footage."""
    if path.exists():
        return
    if shutil.which("ffmpeg") is None:
        raise SystemExit("this benchmark generates its sources with the ffmpeg CLI: apt-get install -y ffmpeg")
    source = "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t+u,hue=H=t/4"
    command = ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", source, "-t", str(minutes * 60),
               "-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-g", "250", "-bf", "2",
               "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(command, check=True)


def fill_cache(cache_dir: Path, videos: list[Path], quality: int, image_format: str, num_frames: int) -> float:
    """Decode every video once into the cache, as the annotator does (its 1 fps frames plus the training sample of
    `num_frames`); returns the seconds it took."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    writer = FrameCacheWriter(cache_dir, writer_id="bench", quality=quality, image_format=image_format)
    started = time.perf_counter()
    for video in videos:
        writer.add_video(video.stem, video, num_frames=[num_frames])
    return time.perf_counter() - started


def samples_per_second(collator: VideoSFTCollator, rows: list[dict], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        for row in rows:
            batch = collator([row])
            assert batch["pixel_values_videos"].shape[1] == collator.num_frames
    return repeats * len(rows) / (time.perf_counter() - started)


def frames_per_second(rows: list[dict], num_frames: int, cache: FrameCache | None, repeats: int) -> float:
    """Samples/s of the frame-reading step alone (what the cache replaces), without the processor's work."""
    started = time.perf_counter()
    for _ in range(repeats):
        for row in rows:
            load_frames(row["video"], video_id=row["video_id"], num_frames=num_frames, cache=cache, size=384)
    return repeats * len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prolongvid_bench/dataloader"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[2, 3, 4, 5], help="one source video each")
    parser.add_argument("--bitrate", default="2M", help="source H.264 bitrate (720p web video: ~1.5-4 Mbit/s)")
    parser.add_argument("--frames", type=int, default=128, help="frames per sample (stage 2: 128)")
    parser.add_argument("--samples", type=int, default=None, help="decode-path samples to time (default: all)")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--format", default="jpeg", choices=["jpeg", "webp", "png"])
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    videos = []
    for number, minutes in enumerate(args.minutes):
        path = args.workdir / f"source{number}_{minutes:g}min_{args.bitrate}.mp4"
        print(f"source {path.name}: generating..." if not path.exists() else f"source {path.name}", flush=True)
        generate_video(path, minutes, args.bitrate)
        videos.append(path)
    cache_dir = args.workdir / "frame_cache"
    fill_seconds = fill_cache(cache_dir, videos, args.quality, args.format, args.frames)

    processor = build_tiny_processor()
    processor.video_processor.size = {"height": 384, "width": 384}
    question = [{"type": "video", "text": None}, {"type": "text", "text": "What happens?"}]
    rows = [
        {"video_id": video.stem, "video": str(video),
         "messages": [{"role": "user", "content": question},
                      {"role": "assistant", "content": [{"type": "text", "text": "Something."}]}]}
        for video in videos
    ]  # fmt: skip
    decoded = VideoSFTCollator(processor, num_frames=args.frames, frame_size=384)
    cached = VideoSFTCollator(processor, num_frames=args.frames, frame_size=384, frame_cache=FrameCache(cache_dir))
    cached_rate = samples_per_second(cached, rows, repeats=3)
    decoded_rate = samples_per_second(decoded, rows[: args.samples], repeats=1)
    cached_frames_rate = frames_per_second(rows, args.frames, cached.frame_cache, repeats=3)
    decoded_frames_rate = frames_per_second(rows[: args.samples], args.frames, None, repeats=1)

    source_minutes = sum(args.minutes)
    source_bytes = sum(video.stat().st_size for video in videos)
    cache_bytes = sum(path.stat().st_size for path in cache_dir.iterdir())
    print(f"\nstage-2 loader, {args.frames} frames/sample, {len(videos)} videos of {args.minutes} min")
    print(f"  decode originals (decord): {decoded_rate:8.3f} samples/s")
    print(f"  frame cache:               {cached_rate:8.3f} samples/s")
    print(f"  ratio cache / decode:      {cached_rate / decoded_rate:8.1f}x   (target >= 20x)")
    print(f"  frame reading alone: decode {decoded_frames_rate:.3f} samples/s, cache {cached_frames_rate:.3f} "
          f"samples/s, ratio {cached_frames_rate / decoded_frames_rate:.1f}x")  # fmt: skip
    print("  (the rest of a sample's time is the processor's pixel normalisation and tokenisation, paid by both)")
    print(f"  filling the cache at 1 fps: {fill_seconds:.1f} s (paid once, by the annotator's decode)")
    print(f"  source videos: {source_bytes / source_minutes / 1e6:6.2f} MB per video-minute ({args.bitrate}bit/s)")
    print(f"  frame cache:   {cache_bytes / source_minutes / 1e6:6.2f} MB per video-minute "
          f"({args.format} q{args.quality}, 384x384, 1 fps + the {args.frames}-frame training sample)")  # fmt: skip
    print(f"  ratio cache / sources:      {cache_bytes / source_bytes:6.1%}   (target <= ~5%)")
    cache = FrameCache(cache_dir)
    cached_frames, _ = cache.sample(videos[0].stem, num_frames=args.frames, size=384)
    decoded_frames, _ = load_video(videos[0], num_frames=args.frames, size=384)
    error = pixel_error(cached_frames, decoded_frames)
    print(f"  pixel error cache vs decode ({args.format} q{args.quality}): mean {error.mean:.2f}, p99 {error.p99:.0f}, "
          f"max {error.max} grey levels")  # fmt: skip


if __name__ == "__main__":
    main()
