"""Importing each accepted format: rows land in the config of their probed duration (or the image config), load with
``load_dataset``, keep their per-row ``num_frames``; media that is missing, unreadable, outside the media root or too
long is left out with its reason; the card shows the counts and plots; the command line and its guards."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from dataset_builder.__main__ import main
from dataset_builder.importing.importer import ImportSettings, import_annotations
from tests.dataset_builder.test_import_support import (
    BANDS,
    VIDEOS,
    image_pixels,
    import_command,
    png_bytes,
    read_jsonl,
    run_command,
    run_import,
    turns,
    video_row,
    write_json,
    write_jsonl,
    write_media,
    write_onevision_parquet,
)

QA = ("<image>\nWhat is shown?", "Gray frames.", "Anything else?", "No.")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_media(tmp_path_factory.mktemp("import-media"))


def load(out, config, tmp_path):
    return load_dataset(str(out), config, split="train", cache_dir=str(tmp_path / "hf_cache"))


def test_json_and_jsonl_rows_land_in_the_stage_of_their_probed_duration(media, tmp_path):
    names = list(VIDEOS) + ["bad.mp4", "gone.mp4"]
    stage_file = [video_row(f"json-{n}", f"videos/{n}", *QA, data_source="yt8m", num_frames=64) for n in names]
    lines = [video_row(f"jsonl-{n}", f"./videos/sub/../{n}", *QA) for n in names]
    write_json(tmp_path / "annotations" / "stage2_yt8m_2-5min_train_data.json", stage_file)
    write_jsonl(tmp_path / "annotations" / "more" / "extra.jsonl", lines, extra_lines=("{not json", ""))
    assert run_import(tmp_path / "annotations", media, tmp_path / "out", "--chunk-rows", "3") == 0

    expected = {}  # the band of each video from its known length, independently of the probe
    for name, (frames, fps) in VIDEOS.items():
        assert (frames / fps < 120, 120 <= frames / fps < 300, 300 <= frames / fps < 1200) == tuple(
            BANDS[name] == stage for stage in ("stage1", "stage2", "stage3")
        )
        if BANDS[name]:
            expected.setdefault(BANDS[name], set()).update({f"videos/{name}"})
    for stage, videos in expected.items():
        rows = load(tmp_path / "out", stage, tmp_path)
        assert set(rows["video_id"]) == videos and len(rows) == 2 * len(videos)
        for row in rows:
            frames, fps = VIDEOS[row["video_id"].split("/")[-1]]
            assert row["duration"] == pytest.approx(frames / fps)
            assert row["video"] == os.path.abspath(media / row["video_id"])
            assert row["source"] == ("yt8m" if row["num_frames"] == 64 else "extra")  # data_source, else file name
            assert row["num_frames"] in (64, None)

    errors = read_jsonl(tmp_path / "out" / "import_errors.jsonl")
    by_kind = {}
    for error in errors:
        by_kind.setdefault(error["kind"], set()).add(error["video_id"])
    assert by_kind == {
        "too_long": {"json-huge.mp4", "jsonl-huge.mp4"},
        "unreadable": {"json-bad.mp4", "jsonl-bad.mp4"},
        "missing": {"json-gone.mp4", "jsonl-gone.mp4"},
        "not_json": {"extra.jsonl:6"},  # rows are numbered per file from 0; the empty line is no row
    }
    assert all(e["reason"] for e in errors)
    unreadable = next(e for e in errors if e["kind"] == "unreadable")
    assert "bad.mp4" in unreadable["reason"] and "not a readable video" in unreadable["reason"]


def test_full_probe_demuxes_and_agrees_with_the_header(media, tmp_path):
    rows = [video_row(f"r{i}", f"videos/{name}", *QA) for i, name in enumerate(VIDEOS)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    header = import_annotations(ImportSettings(tmp_path / "rows.jsonl", media, tmp_path / "a", progress=False))
    full = import_annotations(
        ImportSettings(tmp_path / "rows.jsonl", media, tmp_path / "b", probe="full", progress=False)
    )
    assert header.media.keys() == full.media.keys() == {f"videos/{name}" for name in VIDEOS}
    for key in header.media:
        assert header.media[key][0] == pytest.approx(full.media[key][0], abs=0.2)


def test_paths_cannot_leave_the_media_root_but_symlinks_inside_it_are_followed(media, tmp_path):
    root = tmp_path / "snapshot"
    (root / "videos").mkdir(parents=True)
    os.symlink(media / "videos" / "short.mp4", root / "videos" / "linked.mp4")  # a Hub snapshot: links to blobs
    (tmp_path / "outside.mp4").write_bytes((media / "videos" / "short.mp4").read_bytes())
    rows = [
        video_row("linked", "videos/linked.mp4", *QA),
        video_row("dotdot", "videos/../../outside.mp4", *QA),
        video_row("absolute", str(tmp_path / "outside.mp4"), *QA),
        video_row("backslash", "..\\outside.mp4", *QA),
    ]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    assert run_import(tmp_path / "rows.jsonl", root, tmp_path / "out") == 0
    assert load(tmp_path / "out", "stage1", tmp_path)["video_id"] == ["videos/linked.mp4"]
    errors = read_jsonl(tmp_path / "out" / "import_errors.jsonl")
    assert {(e["video_id"], e["kind"]) for e in errors} == {
        ("dotdot", "unsafe_path"), ("absolute", "unsafe_path"), ("backslash", "unsafe_path"),
    }  # fmt: skip


def test_onevision_parquet_images_are_written_once_and_load_pixel_exact(media, tmp_path):
    rows = [
        {"id": f"ov{i}", "conversations": turns("<image>\nWhat is it?", f"Noise {i}.", "Sure?", "Yes."),
         "data_source": "ai2d(internvl)", "image": {"bytes": png_bytes(i % 2), "path": None}}
        for i in range(4)
    ]  # fmt: skip
    rows.append({"id": "text_only", "conversations": turns("Hi", "Hello"), "data_source": "magpie", "image": None})
    write_onevision_parquet(tmp_path / "ov" / "train-00000-of-00001.parquet", rows)
    argv = ["--modality", "image", "--image-config", "image_knowledge", "--chunk-rows", "2"]
    assert run_import(tmp_path / "ov", media, tmp_path / "out", *argv) == 0
    loaded = load(tmp_path / "out", "image_knowledge", tmp_path)
    assert loaded["video_id"] == [row["video_id"] for row in loaded] and len(loaded) == 4
    assert len({row["image"] for row in loaded}) == 2, "a repeated image is stored once"
    for index, row in enumerate(loaded):
        assert row["source"] == "ai2d(internvl)" and not os.path.isabs(row["image"])
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / row["image"])), image_pixels(index % 2))
        assert row["messages"][0]["content"][0] == {"type": "image", "text": None}
    assert [e["kind"] for e in read_jsonl(tmp_path / "out" / "import_errors.jsonl")] == ["no_media"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "config_name: image_knowledge" in card and "stage1" not in card.split("---")[1]


def test_image_rows_by_path_and_unreadable_image_bytes(media, tmp_path):
    (media / "images" / "broken.png").write_bytes(b"not a png")
    rows = [
        {"id": "a", "image": "images/img0.png", "conversations": turns("Describe <image>", "Noise.")},
        {"id": "b", "image": "images/broken.png", "conversations": turns("<image>\nQ?", "A.")},
        {"id": "c", "video": "videos/short.mp4", "conversations": turns("<image>\nQ?", "A.")},
    ]
    write_json(tmp_path / "images.json", rows)
    write_onevision_parquet(
        tmp_path / "bytes.parquet",
        [{"id": "d", "conversations": turns("<image>\nQ?", "A."), "data_source": "x", "image": {"bytes": b"junk"}}],
    )
    for name in ("images.json", "bytes.parquet"):
        assert run_import(tmp_path / name, media, tmp_path / name.split(".")[0], "--modality", "image") == 0
    loaded = load(tmp_path / "images", "image_sft", tmp_path)
    assert loaded["image"] == [os.path.abspath(media / "images" / "img0.png")]
    kinds = {e["video_id"]: e["kind"] for e in read_jsonl(tmp_path / "images" / "import_errors.jsonl")}
    assert kinds == {"b": "unreadable", "c": "other_modality"}
    assert [e["kind"] for e in read_jsonl(tmp_path / "bytes" / "import_errors.jsonl")] == ["unreadable"]
    assert not (tmp_path / "bytes" / "image_sft").exists(), "no rows: no config"


def test_card_lists_configs_counts_and_plots(media, tmp_path):
    rows = [video_row(f"s{i}", "videos/short.mp4", *QA, data_source="pmv") for i in range(3)]
    rows += [video_row("m0", "videos/mid.mp4", "<image>\nDescribe.", "word " * 50, data_source="yt8m")]
    rows += [video_row("h0", "videos/huge.mp4", *QA, data_source="yt8m")]
    write_json(tmp_path / "rows.json", rows)
    assert run_import(tmp_path / "rows.json", media, tmp_path / "out") == 0
    card = (tmp_path / "out" / "README.md").read_text()
    yaml_block = card.split("---")[1]
    assert "config_name: stage1" in yaml_block and "config_name: stage2" in yaml_block
    assert "config_name: stage3" not in yaml_block, "an empty config is left out of the YAML"
    assert "| < 2 min (stage1) | 1 | 0.00 | 3 |" in card
    assert f"| 2-5 min (stage2) | 1 | {150 / 3600:.2f} | 1 |" in card
    assert f"| > 20 min (no stage) | 1 | {1300 / 3600:.2f} | 0 |" in card
    assert "- `pmv`: 3 rows\n- `yt8m`: 1 rows" in card and "- `too_long`: 1 rows" in card
    for name in ("duration_histogram", "caption_length_vs_duration", "source_shares"):
        assert f"(plots/{name}.png)" in card and Image.open(tmp_path / "out" / "plots" / f"{name}.png").size[0] > 100


def test_a_re_import_into_the_same_folder_is_not_served_from_the_datasets_cache(media, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [video_row("a0", "videos/short.mp4", *QA)])
    write_jsonl(tmp_path / "b.jsonl", [video_row(f"b{i}", "videos/short.mp4", *QA) for i in range(3)])
    assert run_import(tmp_path / "a.jsonl", media, tmp_path / "ds") == 0
    assert len(load(tmp_path / "ds", "stage1", tmp_path)) == 1
    assert run_import(tmp_path / "b.jsonl", media, tmp_path / "ds") == 2, "other inputs need --restart"
    assert run_import(tmp_path / "b.jsonl", media, tmp_path / "ds", "--restart") == 0
    assert len(load(tmp_path / "ds", "stage1", tmp_path)) == 3, "same folder, same cache dir: fresh rows"
    assert len(list((tmp_path / "ds" / "stage1").iterdir())) == 1, "the first import's files are gone"


def test_guards_name_the_problem_and_the_fix(media, tmp_path, capsys):
    write_jsonl(tmp_path / "rows.jsonl", [video_row("a", "videos/short.mp4", *QA)])
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "README.md").write_text("a build")
    assert run_import(tmp_path / "rows.jsonl", media, tmp_path / "built") == 2
    assert "did not write (a `build`?); choose a new --out" in capsys.readouterr().err
    assert run_import(tmp_path / "rows.jsonl", tmp_path / "nowhere", tmp_path / "x") == 2
    assert "--media-root" in capsys.readouterr().err
    assert run_import(tmp_path / "missing.json", media, tmp_path / "x") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "object.json").write_text(json.dumps({"data": []}))
    assert run_import(tmp_path / "object.json", media, tmp_path / "y") == 2
    assert "must hold one array of rows" in capsys.readouterr().err
    assert run_import(tmp_path / "rows.jsonl", media, tmp_path / "ok") == 0
    (tmp_path / "rows.jsonl").write_text((tmp_path / "rows.jsonl").read_text() * 2)
    assert run_import(tmp_path / "rows.jsonl", media, tmp_path / "ok") == 2
    assert "changed: inputs" in capsys.readouterr().err


def test_command_line_prints_the_summary_and_a_progress_bar(media, tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", [video_row(f"r{i}", "videos/short.mp4", *QA) for i in range(4)])
    result = run_command(import_command(tmp_path / "rows.jsonl", media, tmp_path / "out", "--chunk-rows", "2"))
    assert result.returncode == 0, result.stderr
    assert "4 rows read" in result.stdout and "stage1 4 training rows" in result.stdout
    assert "import: 100%" in result.stderr and "rows=4" in result.stderr


def test_import_help_is_light_and_shows_defaults(capsys):
    """`import --help` answers from a fresh process without loading torch, datasets, PyAV or pyarrow."""
    probe = "import sys\nfrom dataset_builder.__main__ import main\ntry:\n    main(['import', '--help'])\n"
    probe += "except SystemExit:\n    print(sorted({'torch', 'datasets', 'av', 'pyarrow'} & set(sys.modules)))"
    result = run_command([sys.executable, "-c", probe], timeout=60)
    assert result.stdout.startswith("usage: python -m dataset_builder import"), result.stderr
    assert result.stdout.strip().endswith("[]")
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [("--modality", "video"), ("--probe", "header"), ("--chunk-rows", "10000"),
                            ("--image-config", "image_sft"), ("--workers", "16")]:  # fmt: skip
        assert f"(default: {default})" in text.split(option, 2)[-1].split(" --", 1)[0], option


def test_cli_image_configs_match_the_schema():
    from dataset_builder import cli
    from dataset_builder.schemas import IMAGE_CONFIGS

    assert cli.IMAGE_CONFIGS == IMAGE_CONFIGS


def test_an_output_folder_inside_the_annotations_folder_is_not_read_as_annotations(media, tmp_path):
    write_jsonl(tmp_path / "data" / "rows.jsonl", [video_row("a", "videos/short.mp4", *QA)])
    for _ in range(2):  # the second run finds its own Parquet files under data/out and must not import them
        assert run_import(tmp_path / "data", media, tmp_path / "data" / "out") == 0
    assert len(load(tmp_path / "data" / "out", "stage1", tmp_path)) == 1


@pytest.mark.slow
def test_import_benchmark_runs():
    import importlib

    results = importlib.import_module("benchmarks.import").main(["--rows", "300", "--videos", "4"])
    assert [r["rows"] for r in results] == [300] * 4 and all(r["rows_per_s"] > 0 for r in results)
    assert results[0]["probed"] == 4 and results[-1]["probed"] == 0
