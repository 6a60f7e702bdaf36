"""Annotation throughput and segmentation speed.

1. API layer: N distinct requests through ``ApiClient`` (cache appends with fsync, retries armed) against the local
   OpenAI-compatible server (run in a separate process, 200 ms injected latency) at concurrency 8 / 32 / 64.
   Target: requests/s >= 90% of concurrency / latency.
2. End to end: ``python -m dataset_builder annotate`` (in-process ``main``) on generated videos (short + 70 s videos,
   fixed segmentation) against the same server: videos/min and requests/s.
3. Segmentation (similarity + distance + clustering + contiguity) for N = 60 / 600 / 1200 frames, D = 1152 (SigLIP
   so400m width), scene-structured features. Target: 1,200 frames well under a second.
4. Ray (``--ray``, needs the ``scale`` extra; a local cluster of this machine's CPUs):
   a. the API layer through the global rate limit: 2 worker actors share one ``RateLimit`` actor at concurrency
      8 / 32 / 64 (two actor calls per request on top of the request itself);
   b. ``annotate --engine ray`` end to end on the videos of 2., videos/min with 1 and 2 workers (a fresh work dir
      each; the time includes starting the stream's worker processes).

Run: ``python benchmarks/annotation.py [--requests-per-slot 24] [--latency 0.2] [--ray]``
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


def write_videos(videos: Path) -> int:
    """24 x 10 s + 8 x 70 s generated videos; returns their number."""
    videos.mkdir()
    for k in range(24):
        write_scene_video(videos / f"short{k}.mp4", [5, 5], seed=k)
    for k in range(8):
        write_scene_video(videos / f"long{k}.mp4", [35, 35], seed=k)
    return 32


def end_to_end(base_url: str, concurrency: int, *engine: str) -> tuple[float, float, int]:
    """videos/min, requests/s and calls of one ``annotate`` run (``engine``: extra flags, e.g. ``--engine ray``)."""
    from dataset_builder.__main__ import main

    with tempfile.TemporaryDirectory() as tmp:
        count = write_videos(Path(tmp) / "videos")
        argv = ["annotate", "--videos", f"{tmp}/videos", "--out", f"{tmp}/work", "--base-url", base_url,
                "--segmentation", "fixed", "--concurrency", str(concurrency), "--no-progress", *engine]  # fmt: skip
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        calls = len(list(JsonlStore(f"{tmp}/work/api_cache", "_").records()))
        return count / seconds * 60, calls / seconds, calls


def ray_api_throughput(base_url: str, concurrency: int, count: int, workers: int = 2) -> float:
    """requests/s of ``workers`` Ray actors sending ``count`` requests in all through one global ``RateLimit``."""
    import ray

    from dataset_builder.rate_limit import RemoteRateLimit, global_rate_limit

    @ray.remote(num_cpus=0)
    class Sender:
        def __init__(self, limit, work: str) -> None:
            self.client = ApiClient(JsonlStore(f"{work}/c", "s"), JsonlStore(f"{work}/e", "s"), base_url=base_url,
                                    concurrency=concurrency, timeout=30, limiter=RemoteRateLimit(limit))  # fmt: skip

        def ready(self) -> bool:
            return True

        def send(self, first: int, number: int) -> None:
            prompt = load_prompt("video_caption")

            async def run():
                await asyncio.gather(*(
                    self.client.complete(ChatRequest("video_caption", f"v{i}", prompt, f"segment captions {i}",
                                                     ResponseSpec("text")))
                    for i in range(first, first + number)
                ))  # fmt: skip
                await self.client.aclose()

            asyncio.run(run())

    with tempfile.TemporaryDirectory() as work:
        limit = global_rate_limit(concurrency)
        senders = [Sender.remote(limit, f"{work}/{k}") for k in range(workers)]
        ray.get([sender.ready.remote() for sender in senders])
        share = count // workers
        start = time.perf_counter()
        ray.get([sender.send.remote(k * share, share) for k, sender in enumerate(senders)])
        seconds = time.perf_counter() - start
        for actor in (*senders, limit):
            ray.kill(actor)
        return share * workers / seconds


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


def ray_tables(base_url: str, latency: float, requests_per_slot: int) -> None:
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        print(f"Ray: API layer, 2 worker actors under one global limit, {latency * 1000:.0f} ms latency:")
        print(f"{'concurrency':>12}{'requests':>10}{'req/s':>9}{'ideal':>8}{'ratio':>8}")
        for concurrency in (8, 32, 64):
            count = concurrency * requests_per_slot
            rate = ray_api_throughput(base_url, concurrency, count)
            ideal = concurrency / latency
            print(f"{concurrency:>12}{count:>10}{rate:>9.1f}{ideal:>8.0f}{rate / ideal:>8.2f}")
        print("Ray: annotate --engine ray, the same videos, concurrency 32:")
        for workers in (1, 2):
            per_minute, rate, calls = end_to_end(base_url, 32, "--engine", "ray", "--ray-workers", str(workers))
            print(f"  {workers} worker(s): {per_minute:.1f} videos/min, {rate:.1f} requests/s over {calls} calls")
    finally:
        ray.shutdown()


def main() -> None:
    """Print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--ray", action="store_true", help="also measure the Ray engine (needs the scale extra)")
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
        if args.ray:
            ray_tables(base_url, args.latency, args.requests_per_slot)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    print("Segmentation (D = 1152, median of 5):")
    for n in (60, 600, 1200):
        seconds, segments = segmentation_time(n)
        print(f"  N = {n:>5}: {seconds * 1000:8.1f} ms, {segments} segments")


if __name__ == "__main__":
    main()
