"""An import that dies resumes without redoing finished work: finished chunks' files are left as they are, files
already probed are not probed again, the rows and the errors file end up exactly as in an uninterrupted import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_builder.importing import importer
from dataset_builder.importing.importer import ImportSettings, import_annotations
from dataset_builder.importing.readers import iter_chunks
from processing.synthetic import write_video
from tests.dataset_builder.test_import_support import (
    ROOT,
    import_command,
    read_jsonl,
    video_row,
    write_json,
    write_jsonl,
    write_media,
)

QA = ("<image>\nWhat is shown?", "Gray frames.", "More?", "No.")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = write_media(tmp_path_factory.mktemp("resume-media"))
    for index in range(12):  # distinct files, so that every chunk has probes of its own
        write_video(root / "videos" / f"clip{index}.mp4", 10 + index, fps=10, width=32, height=32)
    return root


def annotation_rows(count: int) -> list[dict]:
    videos = [f"videos/clip{i}.mp4" for i in range(12)] + ["videos/mid.mp4", "videos/bad.mp4", "videos/gone.mp4"]
    rows = [video_row(f"r{i}", videos[i % len(videos)], *QA) for i in range(count)]
    rows[5]["conversations"] = []  # malformed
    return rows


def dataset_rows(out) -> dict[str, list[dict]]:
    """Every config's rows, in file order (file names carry each import's own run prefix: compare contents)."""
    tables = {}
    for config in ("stage1", "stage2", "stage3"):
        files = sorted((out / config).glob("*.parquet")) if (out / config).is_dir() else []
        tables[config] = [row for path in files for row in pq.read_table(path).to_pylist()]
    return tables


def errors_of(out) -> list[tuple]:
    return [(e["file"], e["row"], e["kind"], e["reason"]) for e in read_jsonl(out / "import_errors.jsonl")]


def file_states(out) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("stage*/*.parquet")}


def settings(annotations, media, out, **options) -> ImportSettings:
    return ImportSettings(annotations, media, out, chunk_rows=4, workers=2, progress=False, **options)


@pytest.fixture(scope="module")
def reference(media, tmp_path_factory):
    """An uninterrupted import of the same rows, to compare against."""
    tmp = tmp_path_factory.mktemp("reference")
    write_json(tmp / "rows.json", annotation_rows(40))
    summary = import_annotations(settings(tmp / "rows.json", media, tmp / "out"))
    return dataset_rows(tmp / "out"), errors_of(tmp / "out"), summary


def test_a_crash_inside_a_chunk_resumes_at_that_chunk(media, reference, tmp_path, monkeypatch):
    write_json(tmp_path / "rows.json", annotation_rows(40))
    real_write, calls = importer._write_parquet, []

    def crash_at_the_first_stage2_file(rows, features, target):
        calls.append(target)
        if target.parent.name == "stage2":  # chunk 3 (rows 12-15): its stage1 file is written, its stage2 one not
            raise KeyboardInterrupt("killed")
        real_write(rows, features, target)

    monkeypatch.setattr(importer, "_write_parquet", crash_at_the_first_stage2_file)
    with pytest.raises(KeyboardInterrupt):
        import_annotations(settings(tmp_path / "rows.json", media, tmp_path / "out"))
    before = file_states(tmp_path / "out")
    progress = read_jsonl(tmp_path / "out" / ".import" / "progress" / "chunks.jsonl")
    assert [record["chunk"] for record in progress] == [0, 1, 2] and len(calls) == 5
    probed_before = {r["path"] for r in read_jsonl(tmp_path / "out" / ".import" / "probes" / "probes.jsonl")}
    assert len(probed_before) == 13, "rows 0-15 name 13 existing files (row 5, clip5's, is malformed)"

    monkeypatch.setattr(importer, "_write_parquet", real_write)
    summary = import_annotations(settings(tmp_path / "rows.json", media, tmp_path / "out"))
    assert summary.resumed_chunks == 3
    finished = {path: state for path, state in before.items() if "-c000003" not in path}
    after = file_states(tmp_path / "out")
    assert len(finished) == 3 and all(after[path] == state for path, state in finished.items()), "chunks 0-2 kept"
    assert reference[2].probed == 14 and summary.probed == 1, "only clip5 (first used by row 20) is probed now"
    rows, errors, total = reference
    assert dataset_rows(tmp_path / "out") == rows
    assert errors_of(tmp_path / "out") == errors, "the interrupted chunk's errors are not doubled"
    assert (dict(summary.written), dict(summary.skipped), summary.rows) == (
        dict(total.written),
        dict(total.skipped),
        total.rows,
    )


def test_probes_are_cached_across_runs_and_restarts(media, tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", annotation_rows(30))
    first = import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out"))
    assert first.probed == 14, "12 clips + mid + bad; the missing file is not probed"
    again = import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out"))
    assert (again.probed, again.resumed_chunks, dict(again.written)) == (0, 8, dict(first.written))
    restarted = import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out", restart=True))
    assert (restarted.probed, restarted.resumed_chunks) == (0, 0)
    os.utime(media / "videos" / "clip3.mp4", ns=(time.time_ns(), time.time_ns()))  # a changed file is probed again
    assert import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out", restart=True)).probed == 1


def test_kill_9_of_the_command_line_then_rerun_finishes_the_same_dataset(media, reference, tmp_path):
    write_json(tmp_path / "rows.json", annotation_rows(40))
    command = import_command(tmp_path / "rows.json", media, tmp_path / "out", "--chunk-rows", "4", "--workers", "2")
    progress = tmp_path / "out" / ".import" / "progress" / "chunks.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if progress.is_file() and len(progress.read_text().splitlines()) >= 2:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert not (tmp_path / "out" / "README.md").exists()
    done = len(read_jsonl(progress))

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{done} chunks were already done" in result.stdout
    rows, errors, _ = reference
    assert dataset_rows(tmp_path / "out") == rows and errors_of(tmp_path / "out") == errors


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_reading_resumes_after_any_chunk_of_every_format(tmp_path, suffix):
    """Resuming after chunk k yields exactly the rows after it, also after the last chunk (nothing)."""
    rows = [{"id": f"r{i}", "conversations": [{"from": "human", "value": f"ü {i}, [x]"}]} for i in range(7)]
    path = tmp_path / f"rows{suffix}"
    if suffix == ".json":
        path.write_text(" [\n" + ",\n  ".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n]\n ")
    elif suffix == ".jsonl":
        write_jsonl(path, rows, extra_lines=("",))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
    chunks = list(iter_chunks(path, chunk_rows=2))
    assert [[row["id"] for row in chunk.rows] for chunk in chunks] == [
        ["r0", "r1"],
        ["r2", "r3"],
        ["r4", "r5"],
        ["r6"],
    ]
    assert chunks[-1].fraction == pytest.approx(1.0, abs=0.01)
    for k, chunk in enumerate(chunks):
        rest = list(iter_chunks(path, 2, start=chunk.end))
        assert [c.index for c in rest] == list(range(k + 1, len(chunks)))
        assert [row for c in rest for row in c.rows] == rows[2 * (k + 1) :]
        assert all(c.first_row == 2 * c.index for c in rest)


def test_a_second_import_into_the_same_folder_is_refused_while_one_runs(media, tmp_path):
    import fcntl

    write_jsonl(tmp_path / "rows.jsonl", annotation_rows(8))
    (tmp_path / "out" / ".import").mkdir(parents=True)
    with open(tmp_path / "out" / ".import" / "lock", "w") as held:  # what a running import holds
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another import is writing"):
            import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out"))
    assert import_annotations(settings(tmp_path / "rows.jsonl", media, tmp_path / "out")).rows == 8


def test_probes_run_in_parallel_on_the_workers(media, tmp_path, monkeypatch):
    from dataset_builder.importing import media as media_module

    real_probe, running, peak = media_module._probe_one, [0], [0]
    lock = threading.Lock()

    def slow_probe(path, kind, mode):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return real_probe(path, kind, mode)

    monkeypatch.setattr(media_module, "_probe_one", slow_probe)
    prober = media_module.MediaProber(tmp_path / "probes", workers=4)
    start = time.perf_counter()
    probes = prober.probe([media / "videos" / f"clip{i}.mp4" for i in range(8)], "video")
    elapsed = time.perf_counter() - start
    prober.close()
    assert peak[0] == 4 and elapsed < 8 * 0.2 * 0.75, f"peak {peak[0]} probes at once, {elapsed:.2f} s"
    assert sorted(round(p.duration, 1) for p in probes.values()) == [1.0 + i / 10 for i in range(8)]
