"""Annotation throughput and segmentation speed.

1. API layer: N distinct requests through ``ApiClient`` (cache appends with fsync, retries armed) against the local
   OpenAI-compatible server (run in a separate process, 200 ms injected latency) at concurrency 8 / 32 / 64.
   Target: requests/s >= 90% of concurrency / latency.
2. End to end: ``python -m dataset_builder annotate`` (in-process ``main``) on generated videos (short + 70 s videos,
   fixed segmentation) against the same server: videos/min and requests/s.
3. Segmentation (similarity + distance + clustering + contiguity) for N = 60 / 600 / 1200 frames, D = 1152 (SigLIP
   so400m width), scene-structured features. Target: 1,200 frames well under a second.

Run: ``python benchmarks/annotation.py [--requests-per-slot 24] [--latency 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataset_builder.api import ApiClient, ChatRequest, ResponseSpec  # noqa: E402
from dataset_builder.prompts import load_prompt  # noqa: E402
from dataset_builder.segmentation import segment_frames  # noqa: E402
from dataset_builder.store import JsonlStore  # noqa: E402
from processing.synthetic import write_scene_video  # noqa: E402

# The kit's local OpenAI-compatible server, started as its own process (not imported) so it does not share our GIL.
FAKE_SERVER_MODULE = "dataset_builder.fake_openai_server"


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", FAKE_SERVER_MODULE, "--latency", str(latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    port = process.stdout.readline().split()[1]
    return process, f"http://127.0.0.1:{port}/v1"


def api_throughput(base_url: str, concurrency: int, count: int) -> float:
    with tempfile.TemporaryDirectory() as work:
        client = ApiClient(JsonlStore(f"{work}/c", "s"), JsonlStore(f"{work}/e", "s"), base_url=base_url,
                           concurrency=concurrency, timeout=30)  # fmt: skip
        prompt = load_prompt("video_caption")
        requests = [
            ChatRequest("video_caption", f"v{i}", prompt, f"segment captions of video {i}", ResponseSpec("text"))
            for i in range(count)
        ]

        async def run():
            await asyncio.gather(*(client.complete(r) for r in requests))
            await client.aclose()

        start = time.perf_counter()
        asyncio.run(run())
        return count / (time.perf_counter() - start)


def end_to_end(base_url: str, concurrency: int) -> tuple[float, float, int]:
    from dataset_builder.__main__ import main

    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        videos.mkdir()
        for k in range(24):
            write_scene_video(videos / f"short{k}.mp4", [5, 5], seed=k)
        for k in range(8):
            write_scene_video(videos / f"long{k}.mp4", [35, 35], seed=k)
        argv = ["annotate", "--videos", str(videos), "--out", f"{tmp}/work", "--base-url", base_url,
                "--segmentation", "fixed", "--concurrency", str(concurrency), "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        calls = len(list(JsonlStore(f"{tmp}/work/api_cache", "_").records()))
        return 32 / seconds * 60, calls / seconds, calls


def scene_features(n: int, dim: int = 1152, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scene_of = np.sort(rng.integers(0, max(1, n // 40), n))
    centres = rng.normal(size=(scene_of.max() + 1, dim))
    image = centres[scene_of] + 0.3 * rng.normal(size=(n, dim))
    caption = centres[scene_of] + 0.6 * rng.normal(size=(n, dim))
    return image, caption


def segmentation_time(n: int, repeats: int = 5) -> tuple[float, int]:
    image, caption = scene_features(n)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segments = segment_frames(image, caption, np.arange(float(n)), float(n))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), len(segments)


def main() -> None:
    """Print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--requests-per-slot",
        type=int,
        default=24,
        help="requests = concurrency x this (enough to reach steady state)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    server, base_url = start_server(args.latency)
    try:
        print(f"API layer, {args.latency * 1000:.0f} ms latency (server in its own process):")
        print(f"{'concurrency':>12}{'requests':>10}{'req/s':>9}{'ideal':>8}{'ratio':>8}")
        for concurrency in (8, 32, 64):
            count = concurrency * args.requests_per_slot
            rate = api_throughput(base_url, concurrency, count)
            ideal = concurrency / args.latency
            print(f"{concurrency:>12}{count:>10}{rate:>9.1f}{ideal:>8.0f}{rate / ideal:>8.2f}")
        print("End to end (annotate, 24 x 10 s + 8 x 70 s videos, fixed segmentation, concurrency 32):")
        per_minute, rate, calls = end_to_end(base_url, 32)
        print(f"  {per_minute:.1f} videos/min, {rate:.1f} requests/s over {calls} calls")
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    print("Segmentation (D = 1152, median of 5):")
    for n in (60, 600, 1200):
        seconds, segments = segmentation_time(n)
        print(f"  N = {n:>5}: {seconds * 1000:8.1f} ms, {segments} segments")


if __name__ == "__main__":
    main()
