"""Benchmark ``processing.load_video`` against transformers' video loaders and the decoding floor.

The test video is a 1280x720 30 fps H.264 clip with B-frames and a keyframe every 250 frames, generated once and
cached in ``--workdir`` (with the ffmpeg CLI when it is installed, else PyAV; a 10-minute clip takes several minutes
to encode on 2 cores). Cases: 1 fps over the whole clip, and 128 / 256 uniform frames, our reader resizing each frame
to 384x384 with PIL bicubic right after decoding it (upstream's pixels; ~12 ms of CPU per 720p frame, ~20 ms per
1080p frame). transformers' loaders cannot resize while decoding and return full-size frames; their time excludes
any resize, which favours them. The floor is decoding every frame of the file and discarding it
(``ffmpeg -i f -f null -``, or PyAV with frame threading when ffmpeg is missing).

Run (a 2-minute clip takes ~5 minutes in all; ``--minutes 10`` about 25):
    python benchmarks/video_io.py --minutes 2
    python benchmarks/video_io.py --minutes 10 --workdir /tmp/prolongvid_bench
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing import load_video, probe_video  # noqa: E402

WIDTH, HEIGHT, FPS, GOP, B_FRAMES = 1280, 720, 30, 250, 3
RESIZE = 384
CASES = {"1 fps": {"fps": 1.0}, "128 frames": {"num_frames": 128}, "256 frames": {"num_frames": 256}}


def generate_video(workdir: Path, minutes: float) -> Path:
    """Return the cached test clip, encoding it first if needed."""
    path = workdir / f"h264_{minutes:g}min_{WIDTH}x{HEIGHT}_{FPS}fps_gop{GOP}.mp4"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    seconds = minutes * 60
    print(f"encoding {path} ({minutes:g} min; this takes a while) ...", flush=True)
    if shutil.which("ffmpeg"):
        source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds:g}"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "veryfast"]
            + ["-bf", str(B_FRAMES), "-g", str(GOP), "-keyint_min", str(GOP), "-pix_fmt", "yuv420p", str(partial)],
            check=True,
        )
    else:
        encode_with_pyav(partial, round(seconds * FPS))
    partial.rename(path)
    return path


def encode_with_pyav(path: Path, num_frames: int) -> None:
    """A moving colour pattern with a moving noise patch, so that frames are neither static nor pure noise."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (HEIGHT // 4, WIDTH // 4, 3), dtype=np.uint8)
    x = np.linspace(0, 4 * np.pi, WIDTH, dtype=np.float32)
    y = np.linspace(0, 2 * np.pi, HEIGHT, dtype=np.float32)[:, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"preset": "veryfast", "bf": str(B_FRAMES), "keyint_min": str(GOP)}
        for index in range(num_frames):
            phase = index / FPS
            image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
            for channel in range(3):
                image[..., channel] = (127 + 120 * np.sin(x + y + phase * (channel + 1))).astype(np.uint8)
            top, left = (index * 3) % (HEIGHT - noise.shape[0]), (index * 7) % (WIDTH - noise.shape[1])
            image[top : top + noise.shape[0], left : left + noise.shape[1]] = noise
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def decode_floor(path: Path) -> None:
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)
        return
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass


def readers(path: Path) -> dict[str, Callable[[dict], object]]:
    from transformers.video_utils import load_video as transformers_load_video

    return {
        "ours (auto: decord)": lambda case: load_video(path, size=RESIZE, **case),
        "ours (pyav)": lambda case: load_video(path, size=RESIZE, backend="pyav", **case),
        "transformers pyav": lambda case: transformers_load_video(str(path), backend="pyav", **case),
        "transformers decord": lambda case: transformers_load_video(str(path), backend="decord", **case),
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (ffmpeg), all threads included."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_time(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` runs. CPU time is what a shared, busy box distorts least."""
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        function()
        runs.append((time.perf_counter() - wall, cpu_seconds() - cpu))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prolongvid_bench"), help="where the clip is cached")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test clip in minutes")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the best is reported")
    args = parser.parse_args()

    path = generate_video(args.workdir, args.minutes)
    print(f"{path}: {probe_video(path)}", flush=True)
    floor_name = "ffmpeg -f null" if shutil.which("ffmpeg") else "PyAV full decode"

    floors, results = [], {}
    for case_name, case in CASES.items():
        # The floor is re-measured beside every case: on a shared machine the load drifts during a long run.
        floors.append(best_time(lambda: decode_floor(path), args.repeats))
        print(
            f"  floor ({floor_name}, every frame) {floors[-1][0]:6.1f} s wall {floors[-1][1]:6.1f} s CPU", flush=True
        )
        results[case_name] = {}
        for reader_name, reader in readers(path).items():
            wall, cpu = results[case_name][reader_name] = best_time(lambda r=reader, c=case: r(c), args.repeats)
            print(f"  {case_name:>10} | {reader_name:<20} {wall:6.1f} s wall {cpu:6.1f} s CPU", flush=True)
    floor = min(floors)

    names = list(results["1 fps"])
    print(f"\n{args.minutes:g}-min {WIDTH}x{HEIGHT} H.264 (GOP {GOP}, B-frames), ours resized to {RESIZE}x{RESIZE}.")
    print(f"Seconds, wall / CPU, best of {args.repeats}; floor = {floor_name} (best of {len(floors)} runs).")
    print(f"| case | {' | '.join(names)} | floor | ours/floor | ours/fastest transformers |")
    print("|---" * (len(names) + 4) + "|")
    for case_name, times in results.items():
        ours = times["ours (auto: decord)"]
        fastest = min((value for name, value in times.items() if name.startswith("transformers")), key=lambda t: t[0])
        cells = " | ".join(f"{times[name][0]:.1f} / {times[name][1]:.1f}" for name in names)
        print(
            f"| {case_name} | {cells} | {floor[0]:.1f} / {floor[1]:.1f} "
            f"| {ours[0] / floor[0]:.2f} / {ours[1] / floor[1]:.2f} "
            f"| {ours[0] / fastest[0]:.2f} / {ours[1] / fastest[1]:.2f} |"
        )


if __name__ == "__main__":
    main()
