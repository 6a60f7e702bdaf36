"""The Space's bounded upload folder: quota with least-recently-used eviction, orphans, ended sessions."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

SPACE_DIR = Path(__file__).resolve().parents[2] / "space"


@pytest.fixture(scope="module")
def uploads():
    spec = importlib.util.spec_from_file_location("prolongvid_space_uploads", SPACE_DIR / "uploads.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write(path: Path, size: int, age_seconds: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def sizes(root: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize(("text", "expected"), [("4gb", 4 * 2**30), ("500MB", 500 * 2**20), ("1.5kb", 1536), ("7", 7)])
def test_parse_size(uploads, text, expected):
    assert uploads.parse_size(text) == expected


def test_parse_size_names_the_bad_value(uploads):
    with pytest.raises(ValueError, match="'lots'.*'4gb'"):
        uploads.parse_size("lots")


def test_quota_removes_least_recently_used_files_first_but_never_one_in_use(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path, quota_bytes=300, orphan_seconds=3600)
    oldest = write(tmp_path / "a" / "oldest.mp4", 100, age_seconds=30)
    write(tmp_path / "b" / "middle.mp4", 100, age_seconds=20)
    write(tmp_path / "c" / "newest.mp4", 100, age_seconds=10)
    with folder.use(oldest):  # being decoded right now: the next oldest goes instead
        assert folder.enforce(incoming_bytes=100)
        assert sorted(sizes(tmp_path)) == ["newest.mp4", "oldest.mp4"]
    assert folder.enforce(incoming_bytes=150)  # nothing in use now: the least recently used goes
    assert list(sizes(tmp_path)) == ["oldest.mp4"]  # just used, so now the newest of the two


def test_a_recent_use_protects_an_old_upload(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path, quota_bytes=200, orphan_seconds=3600)
    asked_about = write(tmp_path / "asked.mp4", 100, age_seconds=100)
    write(tmp_path / "other.mp4", 100, age_seconds=50)
    with folder.use(asked_about, session="s1"):
        pass
    assert folder.enforce(incoming_bytes=100)
    assert list(sizes(tmp_path)) == ["asked.mp4"]


def test_upload_that_cannot_fit_is_refused(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path, quota_bytes=100, orphan_seconds=3600)
    busy = write(tmp_path / "busy.mp4", 80)
    with folder.use(busy):
        assert not folder.enforce(incoming_bytes=50)
    assert sizes(tmp_path) == {"busy.mp4": 80}


def test_orphans_expire_and_used_files_stay(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path, quota_bytes=10_000, orphan_seconds=60)
    used = write(tmp_path / "used.mp4", 10, age_seconds=120)
    write(tmp_path / "orphan.mp4", 10, age_seconds=120)
    write(tmp_path / "fresh.mp4", 10, age_seconds=5)
    with folder.use(used, session="s1"):
        pass
    folder.enforce()
    assert sorted(sizes(tmp_path)) == ["fresh.mp4", "used.mp4"]


def test_an_ended_session_removes_only_its_own_files(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path, quota_bytes=10_000, orphan_seconds=3600)
    mine, shared, theirs = (write(tmp_path / name, 10) for name in ("mine.mp4", "shared.mp4", "theirs.mp4"))
    for path, session in [(mine, "me"), (shared, "me"), (shared, "you"), (theirs, "you")]:
        with folder.use(path, session=session):
            pass
    folder.release_session("me")
    assert sorted(sizes(tmp_path)) == ["shared.mp4", "theirs.mp4"]


def test_files_outside_the_folder_are_never_touched(uploads, tmp_path):
    folder = uploads.UploadFolder(tmp_path / "uploads", quota_bytes=10, orphan_seconds=0)
    example = write(tmp_path / "examples" / "sample.mp4", 100)
    with folder.use(example, session="s1"):
        pass
    folder.release_session("s1")
    assert example.exists()
