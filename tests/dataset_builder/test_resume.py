"""Crash safety: a real ``annotate`` subprocess killed with SIGKILL mid-run, then resumed, repeats no finished call."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dataset_builder.__main__ import main
from dataset_builder.fake_openai_server import FakeOpenAIServer
from dataset_builder.store import JsonlStore
from processing.synthetic import write_scene_video

ROOT = Path(__file__).resolve().parents[2]


def cached_ids(work: Path) -> set[str]:
    return {r["response_id"] for r in JsonlStore(work / "api_cache", "_").records()}


def test_kill_9_then_resume_makes_no_repeated_calls(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(3):
        write_scene_video(
            videos / f"v{k}.mp4", [35, 35], seed=k
        )  # 70 s: 7 fixed segments + merge + 3 QA = 11 calls each
    work = tmp_path / "work"
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    with FakeOpenAIServer(latency=0.25) as server:
        argv = ["annotate", "--videos", str(videos), "--out", str(work), "--base-url", server.base_url,
                "--segmentation", "fixed", "--concurrency", "2", "--videos-in-flight", "1", "--no-progress"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen([sys.executable, "-m", "dataset_builder", *argv], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 240
        while len(cached_ids(work)) < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
        finished_before = cached_ids(work)
        assert 8 <= len(finished_before) < 33, "killed mid-run"
        sent_before = server.chat_requests

        assert main(argv) == 0
        resent = set(server.answered_ids[sent_before:])
        assert not resent & finished_before, "a finished call was paid for twice"
        # Exactly the unfinished calls are made (those in flight at the kill included), each once.
        assert server.chat_requests - sent_before == 33 - len(finished_before)
        assert len(cached_ids(work)) == 33
        assert len(list(JsonlStore(work / "annotations", "_").records())) == 3


def test_a_torn_last_line_is_ignored_and_cut(tmp_path):
    store = JsonlStore(tmp_path, "shard")
    store.append({"key": "a"})
    store.close()
    with open(store.path, "ab") as handle:
        handle.write(b'{"key": "b", "trunc')  # what a kill during a write leaves behind
    assert [r["key"] for r in JsonlStore(tmp_path, "reader").records()] == ["a"]
    store.append({"key": "c"})
    assert [r["key"] for r in store.records()] == ["a", "c"]
