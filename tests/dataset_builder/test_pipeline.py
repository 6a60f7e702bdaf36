"""End to end: generated videos with known cuts -> annotate (local server) -> build -> load_dataset + card + Hub."""

import json
import shutil
from unittest import mock

import pytest
from datasets import load_dataset

from dataset_builder.__main__ import main
from dataset_builder.schemas import STRATEGY_TASK_TYPES
from dataset_builder.store import JsonlStore
from dataset_builder.videos import list_videos, shard_items
from processing.synthetic import write_scene_video
from tests.dataset_builder.fixtures import annotate

SECRET = "sk-test-PIPELINE-SECRET-42"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "PMV").mkdir()
    (root / "SA-V").mkdir()
    cuts = {
        "PMV/long": write_scene_video(root / "PMV" / "long.mp4", [25, 20, 30]),
        "SA-V/short": write_scene_video(root / "SA-V" / "short.mp4", [4, 6]),
    }
    (root / "PMV" / "corrupt.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    (root / "PMV" / "empty.mp4").write_bytes(b"")
    return root, cuts


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def records(work, store="annotations"):
    return {r["video_id"]: r for r in JsonlStore(work / store, "_").records()}


def test_annotate_build_load(videos, server, tmp_path, capsys):
    root, cuts = videos
    work, out = tmp_path / "work", tmp_path / "dataset"
    server.faults = ["429", "500", "malformed", "invalid"]  # fault injection loses nothing
    assert annotate(root, work, server) == 3  # two broken videos
    assert "failed videos by reason: unreadable 2" in capsys.readouterr().out
    done = records(work, "annotations")
    assert set(done) == {"PMV/long", "SA-V/short"}
    long, short = done["PMV/long"], done["SA-V/short"]
    # Scene cuts at 25 s and 45 s are recovered from the 1-fps frames.
    assert long["segmentation"] == "semantic"
    assert [s["start"] for s in long["segments"][1:]] == pytest.approx(cuts["PMV/long"], abs=1.0)
    assert long["segments"][-1]["end"] == pytest.approx(75.0)
    assert short["segmentation"] == "none" and len(short["segments"]) == 1  # < 60 s: not segmented
    # Every QA strategy yields exactly its task types; the prompt version is in every row.
    for record, strategies in ((long, {"global", "multi_segment", "single_segment"}), (short, {"short_global"})):
        found = {}
        for qa in record["qa"]:
            found.setdefault(qa["strategy"], set()).add(qa["task_type"])
            assert qa["prompt_version"].endswith("@1.1")  # the QA prompts with example instructions
        assert found == {s: set(STRATEGY_TASK_TYPES[s]) for s in strategies}
    failed = {r["video_id"]: r["reason"] for r in JsonlStore(work / "errors", "_").records() if r["stage"] == "read"}
    assert set(failed) == {"PMV/corrupt", "PMV/empty"} and "0 bytes" in failed["PMV/empty"]
    # 3 segment captions + merge + 3 QA (long), 1 caption + 1 QA (short), plus the 4 injected faults.
    assert server.chat_requests == 9 + 4
    assert annotate(root, work, server) == 3 and server.chat_requests == 13  # re-run: nothing repeated

    assert main(["build", "--work-dir", str(work), "--out", str(out)]) == 0
    cache = tmp_path / "hf_cache"
    stage1 = load_dataset(str(out), "stage1", split="train", cache_dir=str(cache))
    assert stage1.column_names == ["video_id", "video", "source", "duration", "messages"]
    assert stage1.num_rows == 2 + len(long["qa"]) + len(short["qa"])
    row = stage1[0]
    assert row["messages"][0]["content"][0] == {"type": "video", "text": None}
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    qa = load_dataset(str(out), "qa", split="train", cache_dir=str(cache))
    assert qa.num_rows == len(long["qa"]) + len(short["qa"]) and set(qa["source"]) == {"PMV", "SA-V"}
    captions = load_dataset(str(out), "captions", split="train", cache_dir=str(cache))
    assert sorted(captions["video_id"]) == ["PMV/long", "SA-V/short"]
    assert [len(s) for s in captions.sort("video_id")["segments"]] == [3, 1]
    card = (out / "README.md").read_text()
    for name in (
        "duration_histogram",
        "segments_per_video",
        "segment_durations",
        "caption_length_vs_duration",
        "source_shares",
    ):
        assert f"](plots/{name}.png)" in card and (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "config_name: stage1" in card and "config_name: stage2" not in card  # empty configs are left out
    assert "| **total** | 2 |" in card and "Failed videos (recorded with their reason, not included): 2" in card
    everything = capsys.readouterr()
    written = "".join(
        p.read_text(errors="ignore")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix in {".jsonl", ".md", ".json"}
    )
    assert SECRET not in everything.out + everything.err + written
    assert "cost USD" in everything.out  # usage and cost are printed

    with mock.patch("huggingface_hub.HfApi") as hf_api:
        hf_api.return_value.upload_folder.return_value.commit_url = "https://hf.co/commit/1"
        assert (
            main(["build", "--work-dir", str(work), "--out", str(out), "--push-to-hub", "me/data", "--copy-videos"])
            == 0
        )
    hf_api.return_value.create_repo.assert_called_once_with(
        "me/data", repo_type="dataset", private=False, exist_ok=True
    )
    kwargs = hf_api.return_value.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "me/data" and kwargs["folder_path"] == str(out) and kwargs["repo_type"] == "dataset"
    assert "stage1/*.parquet" in kwargs["delete_patterns"]  # the Hub repo keeps no earlier build's data files
    copied = load_dataset(str(out), "stage1", split="train", cache_dir=str(tmp_path / "hf_cache2"))
    assert all((out / path).is_file() for path in copied["video"])


def test_fixed_segmentation_dry_run_and_shards(videos, server, tmp_path, capsys):
    root, _ = videos
    work = tmp_path / "work"
    assert annotate(root, work, server, "--segmentation", "fixed", "--dry-run") == 3  # the broken videos
    out = capsys.readouterr().out
    assert server.chat_requests == 0 and "estimated" in out
    assert "segment_caption         8" in out  # 75 s in fixed 10 s segments
    assert not (work / "annotations").exists()
    local = records(work, "local")
    assert [
        s["end"] - s["start"] for s in next(r for r in local.values() if r["video_id"] == "PMV/long")["segments"]
    ] == [10.0] * 7 + [5.0]
    shard_ids = []
    for index in range(2):
        broken = {"PMV/corrupt", "PMV/empty"} & {item.video_id for item in shard_items(list_videos(root), index, 2)}
        code = annotate(root, tmp_path / f"shard{index}", server, "--segmentation", "fixed", "--shard", f"{index}/2")
        assert code == (3 if broken else 0)
        shard_ids += [r["video_id"] for r in records(tmp_path / f"shard{index}", "local").values()]
    assert sorted(shard_ids) == ["PMV/long", "SA-V/short"]
    assert main(["annotate", "--videos", str(root), "--out", str(work), "--shard", "2/2"]) == 2


def test_progress_bars_count_videos_and_calls(videos, tmp_path, capsys):
    root, _ = videos
    argv = ["annotate", "--videos", str(root), "--out", str(tmp_path / "work"), "--segmentation", "fixed", "--dry-run"]
    assert main(argv) == 3
    bars = {line.split(":")[0].strip(): line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()}
    assert "video/s" in bars["videos"] or "s/video" in bars["videos"]
    assert bars["videos"].split("|")[-1].strip().startswith("4/4")  # two readable videos, two broken ones
    assert "video" in bars["local"] and "call" in bars["captions"] and "call" in bars["qa"]


def test_manifest_sources_and_bad_manifest(videos, tmp_path):
    from dataset_builder.videos import list_videos

    root, _ = videos
    manifest = tmp_path / "m.jsonl"
    shutil.copy(root / "SA-V" / "short.mp4", tmp_path / "clip.mp4")
    manifest.write_text(json.dumps({"path": "clip.mp4", "source": "YouTube-8M"}) + "\n")
    (item,) = list_videos(manifest)
    assert item.source == "YouTube-8M" and item.video_id == "clip" and item.path == str(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="neither a directory nor a manifest"):
        list_videos(tmp_path / "missing")


def test_batch_mode_end_to_end(videos, server, tmp_path):
    root, _ = videos
    work = tmp_path / "work"
    assert annotate(root, work, server, "--batch", "--poll-interval", "0.01") == 3
    done = records(work, "annotations")
    assert set(done) == {"PMV/long", "SA-V/short"} and server.chat_requests == 0
    # Passes: segment + short captions, then the merge + short QA, then long QA.
    assert len(server.batches) == 3 and server.batch_lines == 9
    assert annotate(root, work, server, "--batch", "--poll-interval", "0.01") == 3 and len(server.batches) == 3


def test_a_video_whose_replies_are_unusable_fails_alone_and_the_run_goes_on(videos, server, tmp_path):
    root, _ = videos
    work = tmp_path / "work"
    # Every reply about the 10 s video is an HTTP 200 with "choices": [] (the others are fine).
    server.fault_for = lambda body: "empty_choices" if "from a 10-second video" in json.dumps(body) else None
    assert annotate(root, work, server, "--segmentation", "fixed") == 3
    assert set(records(work)) == {"PMV/long"}
    logged = [r for r in JsonlStore(work / "errors", "_").records() if r["video_id"] == "SA-V/short"]
    assert [(r["stage"], r["kind"]) for r in logged] == [
        ("short_caption", "malformed_response"),
        ("api", "request_failed"),
    ]
    assert logged[0]["attempts"] == 3  # bounded: 1 + --max-invalid-retries 2


def test_an_unexpected_error_in_one_video_is_recorded_and_the_others_finish(videos, server, tmp_path):
    from tests.dataset_builder.fixtures import ColourCaptioner, ColourEmbedder

    class BrokenOnLong(ColourCaptioner):
        def caption(self, frames):
            if len(frames) == 75:  # the 75 s video
                raise RuntimeError("captioner bug")
            return super().caption(frames)

    root, _ = videos
    work = tmp_path / "work"
    argv = ["annotate", "--videos", str(root), "--out", str(work), "--base-url", server.base_url, "--no-progress"]
    main(argv, captioner_factory=BrokenOnLong, embedder_factory=ColourEmbedder)
    assert set(records(work)) == {"SA-V/short"}
    (logged,) = [r for r in JsonlStore(work / "errors", "_").records() if r["video_id"] == "PMV/long"]
    assert logged["kind"] == "internal_error" and "RuntimeError: captioner bug" in logged["reason"]


def test_an_oversized_caption_is_refused_never_cached_nor_forwarded(videos, server, tmp_path):
    from dataset_builder.fake_openai_server import default_content

    root, _ = videos
    work = tmp_path / "work"
    huge = "word " * 2_000_000  # 10 MB

    def content(body):  # the caption of the long video's first segment is 10 MB
        return huge if "spanning 0s to 10s" in json.dumps(body) else default_content(body)

    server.content_fn = content
    annotate(root, work, server, "--segmentation", "fixed", "--max-tokens", "700", "--max-tokens", "qa=900")
    assert set(records(work)) == {"SA-V/short"}
    sent = {("qa" if "response_format" in body else "caption", body["max_tokens"]) for body in server.bodies}
    assert sent == {("caption", 700), ("qa", 900)}
    assert max(len(json.dumps(body)) for body in server.bodies) < 100_000, "never sent on in a later prompt"
    assert sum(path.stat().st_size for path in work.rglob("*.jsonl")) < 100_000, "never cached"


def test_fenced_json_from_a_server_without_structured_outputs_costs_one_call_per_answer(videos, server, tmp_path):
    from dataset_builder.fake_openai_server import default_content

    root, _ = videos
    work = tmp_path / "work"
    server.json_schema = False
    server.content_fn = lambda body: (
        "```json\n" + default_content(body) + "\n```" if "response_format" in body else default_content(body)
    )
    annotate(root, work, server, "--segmentation", "fixed", "--concurrency", "1", "--videos-in-flight", "1")
    assert set(records(work)) == {"PMV/long", "SA-V/short"}
    # 8 segment captions + merge + 3 QA (75 s video), caption + QA (10 s video), and the one refused json_schema.
    assert server.chat_requests == 12 + 2 + 1
    formats = [body["response_format"]["type"] for body in server.bodies if "response_format" in body]
    assert formats == ["json_schema"] + ["json_object"] * 4


def test_exit_status_is_0_only_when_every_video_is_done_and_failures_are_counted_by_reason(
    videos, server, tmp_path, capsys
):
    root, _ = videos
    server.fault_for = lambda body: "500" if "from a 10-second video" in json.dumps(body) else None
    assert annotate(root, tmp_path / "work", server, "--segmentation", "fixed", "--max-retries", "1") == 3
    out = capsys.readouterr().out
    assert "videos: 1 done, 0 already done, 3 failed, 0 pending" in out
    assert "failed videos by reason: unreadable 2, http_500 1" in out
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(root / "PMV" / "long.mp4", good / "long.mp4")
    server.fault_for = None
    assert annotate(good, tmp_path / "work2", server, "--segmentation", "fixed") == 0
    assert "failed videos by reason" not in capsys.readouterr().out


def test_annotate_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 when every video of the shard is done" in text and "3 when some videos failed" in text


def test_the_captions_table_stores_video_paths_relative_to_the_videos_root(videos, server, tmp_path):
    root, _ = videos
    inside, outside = tmp_path / "set" / "clips" / "a.mp4", tmp_path / "elsewhere" / "b.mp4"
    for target in (inside, outside):
        target.parent.mkdir(parents=True)
        shutil.copy(root / "SA-V" / "short.mp4", target)
    manifest = tmp_path / "set" / "videos.jsonl"
    manifest.write_text(json.dumps({"path": "clips/a.mp4"}) + "\n" + json.dumps({"path": str(outside)}) + "\n")
    for source, work, expected in (
        (root, tmp_path / "w1", ["PMV/long.mp4", "SA-V/short.mp4"]),
        (manifest, tmp_path / "w2", ["b.mp4", "clips/a.mp4"]),  # b.mp4 is outside the root: its name only
    ):
        annotate(source, work, server, "--segmentation", "fixed")
        out = tmp_path / f"{work.name}-dataset"
        assert main(["build", "--work-dir", str(work), "--out", str(out)]) == 0
        captions = load_dataset(str(out), "captions", split="train", cache_dir=str(tmp_path / "hf"))
        assert sorted(captions["video"]) == expected
        parquet = b"".join(p.read_bytes() for p in (out / "captions").glob("*.parquet"))
        assert str(tmp_path).encode() not in parquet and str(root).encode() not in parquet
