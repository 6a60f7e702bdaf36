"""``annotate --engine ray`` on a local 2-CPU Ray cluster against the local OpenAI-compatible server.

The Ray run's dataset equals the in-process run's; the server never sees more requests in flight than the one global
limit; a killed API worker is restarted and its videos finished without paying twice for an answer; a 429's
Retry-After pauses every worker.
"""

import builtins
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(240)  # a stuck stream fails the test instead of hanging the suite

from datasets import load_dataset  # noqa: E402

from dataset_builder.__main__ import main  # noqa: E402
from dataset_builder.build import CONFIGS  # noqa: E402
from dataset_builder.fake_openai_server import FakeOpenAIServer  # noqa: E402
from dataset_builder.store import JsonlStore  # noqa: E402
from processing.frame_cache import FrameCache  # noqa: E402
from processing.synthetic import write_scene_video  # noqa: E402
from tests.dataset_builder.fixtures import ColourCaptioner, ColourEmbedder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """Two worker CPUs; the workers import this checkout (and the tests' colour frame models). Ray leaves its own
    `builtins.print` behind after `ray.shutdown()`; the original is put back so later tests see the real one."""
    original_print = builtins.print
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()
    builtins.print = original_print


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")


def annotate(videos, work, server, *extra):
    argv = ["annotate", "--videos", str(videos), "--out", str(work), "--base-url", server.base_url, "--no-progress",
            "--backoff-base", "0.01", *extra]  # fmt: skip
    return main(argv, captioner_factory=ColourCaptioner, embedder_factory=ColourEmbedder)


def parquet_rows(dataset_dir: Path) -> dict[str, list[dict]]:
    """Every config's rows, as ``load_dataset("parquet", ...)`` reads the built files (sorted, order-free)."""
    rows = {}
    for config in CONFIGS:
        files = sorted(str(p) for p in (dataset_dir / config).glob("*.parquet"))
        if files:
            table = load_dataset("parquet", data_files=files, split="train")
            rows[config] = sorted((repr(sorted(row.items())) for row in table), key=str)
    return rows


def cached_answers(work: Path) -> dict[str, str]:
    return {r["key"]: r["response_id"] for r in JsonlStore(work / "api_cache", "_").records()}


def test_the_ray_dataset_equals_the_in_process_one(tmp_path):
    videos = tmp_path / "videos"
    (videos / "PMV").mkdir(parents=True)
    write_scene_video(videos / "PMV" / "long.mp4", [25, 20, 30])  # semantic: frame models + segmentation
    write_scene_video(videos / "PMV" / "short.mp4", [4, 6], seed=1)  # < 60 s: one caption
    (videos / "PMV" / "corrupt.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    with FakeOpenAIServer(latency=0.1) as server:
        assert annotate(videos, tmp_path / "local", server, "--concurrency", "3") == 3  # the corrupt video
        local_calls = server.chat_requests
        server.max_in_flight = 0
        ray_args = ("--engine", "ray", "--ray-workers", "2", "--concurrency", "3")
        assert annotate(videos, tmp_path / "ray", server, *ray_args) == 3
        assert server.chat_requests - local_calls == local_calls  # the same calls, each once
        assert server.max_in_flight <= 3
    for run in ("local", "ray"):
        assert main(["build", "--work-dir", str(tmp_path / run), "--out", str(tmp_path / f"{run}_dataset")]) == 0
    local_rows, ray_rows = parquet_rows(tmp_path / "local_dataset"), parquet_rows(tmp_path / "ray_dataset")
    assert set(local_rows) >= {"captions", "qa"} and len(local_rows["captions"]) == 2
    assert ray_rows == local_rows
    # The frame cache holds every readable video once.
    assert sorted(FrameCache(tmp_path / "ray" / "frame_cache").entries) == ["PMV/long", "PMV/short"]
    errors = list(JsonlStore(tmp_path / "ray" / "errors", "_").records())
    assert [(e["video_id"], e["kind"]) for e in errors] == [("PMV/corrupt", "unreadable")]


def test_a_killed_api_worker_is_restarted_no_call_is_paid_twice_and_the_global_concurrency_holds(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(4):
        write_scene_video(videos / f"v{k}.mp4", [35, 35], seed=k)  # 70 s, fixed: 7 segments + merge + 3 QA = 11 calls
    work = tmp_path / "work"
    killed = {}

    def kill_a_worker_after_its_third_answer():
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not killed:
            for path in (work / "api_cache").glob("*-api-*.jsonl"):
                if len(path.read_bytes().splitlines()) >= 3:
                    killed["pid"] = int(path.stem.rsplit("-", 1)[1])
                    killed["answers"] = dict(cached_answers(work))
                    os.kill(killed["pid"], signal.SIGKILL)
                    break
            time.sleep(0.02)

    with FakeOpenAIServer(latency=0.2) as server:
        killer = threading.Thread(target=kill_a_worker_after_its_third_answer)
        killer.start()
        # The killed worker's slots in the global limit come back --timeout + 5 s after it took them.
        ray_args = ("--engine", "ray", "--ray-workers", "2", "--concurrency", "2", "--segmentation", "fixed",
                    "--timeout", "3")  # fmt: skip
        assert annotate(videos, work, server, *ray_args) == 0
        killer.join()
        # Alone, each of the two workers would keep 2 requests in flight (2 videos x 7 segment captions at once).
        assert server.max_in_flight == 2
        assert killed, "no worker was killed"
        # Every video finished; the answers cached before the kill were never asked again.
        assert len(list(JsonlStore(work / "annotations", "_").records())) == 4
        paid_before_kill = set(killed["answers"].values())
        assert 3 <= len(paid_before_kill) < 44
        assert server.answered_ids.count(next(iter(paid_before_kill))) == 1
        assert all(server.answered_ids.count(answer) == 1 for answer in paid_before_kill)
        # Only requests in flight at the kill (at most the global concurrency) were sent twice.
        assert 44 <= server.chat_requests <= 44 + 2
        assert len(cached_answers(work)) == 44
    writers = {int(p.stem.rsplit("-", 1)[1]) for p in (work / "api_cache").glob("*-api-*.jsonl")}
    assert killed["pid"] in writers and len(writers) == 3  # the restarted worker wrote to a file of its own


def test_retry_after_pauses_every_ray_worker(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(4):
        write_scene_video(videos / f"s{k}.mp4", [4, 6], seed=k)  # 10 s: a caption + one QA call each
    with FakeOpenAIServer(latency=0.05, retry_after="1.5") as server:
        server.faults = ["429"]
        ray_args = ("--engine", "ray", "--ray-workers", "2", "--concurrency", "1", "--segmentation", "fixed")
        assert annotate(videos, tmp_path / "work", server, *ray_args) == 0
    assert server.chat_requests == 8 + 1
    # The 429 came back 0.05 s after the first request arrived; no worker sent anything for the next 1.5 s.
    first, second = server.arrivals[:2]
    assert second - first >= 0.05 + 1.5 - 0.02


def test_help_names_the_ray_options_without_importing_ray():
    probe = (
        "import sys, contextlib, io\nfrom dataset_builder.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['annotate', '--help'])\n    except SystemExit:\n        pass\n"
        "text = out.getvalue()\n"
        "print('ray' in sys.modules, '--engine {local,ray}' in text, '--tokens-per-minute' in text)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "True", "True"], result.stderr
