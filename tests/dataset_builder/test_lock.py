"""One run per work dir shard: a second run refuses at once naming the holder; a killed run's lock is taken over."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_builder.__main__ import main
from dataset_builder.fake_openai_server import FakeOpenAIServer
from dataset_builder.lock import WorkDirLock, WorkDirLocked
from processing.synthetic import write_scene_video

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_run_refuses_at_once_and_a_killed_runs_lock_is_taken_over(tmp_path, monkeypatch, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_scene_video(videos / "v.mp4", [35, 35])  # 70 s: 7 fixed segments + merge + 3 QA = 11 calls
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    with FakeOpenAIServer(latency=1.0) as server:
        argv = ["annotate", "--videos", str(videos), "--out", str(tmp_path / "work"), "--base-url", server.base_url,
                "--segmentation", "fixed", "--concurrency", "1", "--no-progress"]  # fmt: skip
        first = subprocess.Popen([sys.executable, "-m", "dataset_builder", *argv], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while server.chat_requests == 0 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert first.poll() is None, first.stderr.read().decode()[-2000:]

            start = time.monotonic()
            assert main(argv) == 2
            assert time.monotonic() - start < 5, "refused at once"
            message = " ".join(capsys.readouterr().err.split())
            assert f"pid {first.pid} on host {socket.gethostname()}, started 20" in message
            assert "would pay for every answer twice" in message
            time.sleep(1.0)
            assert max(server.body_counts.values()) == 1, "no answer was bought twice"
            assert first.poll() is None, "the first run is still going when it is killed"
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        server.latency = 0.0
        assert main(argv) == 0
        message = " ".join(capsys.readouterr().err.split())
        assert f"took over the lock left by pid {first.pid} on host {socket.gethostname()}" in message
    assert (tmp_path / "work" / "locks" / "shard-00000-of-00001.lock").read_bytes() == b"", "a clean exit leaves none"


def brute_force_overlap(first, second):
    """Whether some integer falls in both residue classes (a video hash could land in both shards)."""
    (i, n), (j, m) = first, second
    return any(h % n == i and h % m == j for h in range(n * m))


@pytest.mark.parametrize("other", [(0, 1), (0, 2), (1, 2), (0, 4), (1, 4), (2, 4), (3, 4), (1, 3), (2, 6), (5, 6)])
def test_overlapping_shards_exclude_each_other_and_disjoint_ones_run_side_by_side(tmp_path, other):
    with WorkDirLock(tmp_path, 0, 2):
        if brute_force_overlap((0, 2), other):
            with pytest.raises(WorkDirLocked, match="shard 0/2"):
                WorkDirLock(tmp_path, *other).acquire()
        else:
            with WorkDirLock(tmp_path, *other) as lock:
                assert lock.took_over is None
    with WorkDirLock(tmp_path, *other):  # every lock was released
        pass
