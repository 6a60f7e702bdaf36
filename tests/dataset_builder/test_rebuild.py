"""A dataset rebuilt into the same folder loads fresh: datasets 5.x caches a local folder by its name and data_files."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dataset_builder.build import build_dataset
from dataset_builder.records import AnnotationRecord, CaptionedSegment, QAPair
from dataset_builder.store import JsonlStore

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("captions", "qa", "stage1")


def write_work_dir(work: Path, videos: int) -> None:
    store = JsonlStore(work / "annotations", "shard-00000-of-00001")
    for k in range(videos):
        store.append(
            AnnotationRecord(
                video_id=f"PMV/v{k}", video=f"/videos/PMV/v{k}.mp4", relative_video=f"PMV/v{k}.mp4", source="PMV",
                fingerprint=f"f{k}", duration=30.0, fps=30.0, segmentation="none",
                segments=(CaptionedSegment(0.0, 30.0, f"Scene {k}."),), video_caption=f"Scene {k}.",
                qa=(QAPair("general_qa", f"What is {k}?", f"It is {k}.", "short_global", None, "qa_global@1.0"),),
                prompt_versions={"captions": ["short_caption@1.0"], "qa": ["qa_global@1.0"]}, models={"api": "m"},
                time=0.0,
            ).to_dict()
        )  # fmt: skip
    store.close()


def rows_in_a_new_process(dataset: Path, cache: Path) -> dict[str, int]:
    """``{config: rows}`` read with ``load_dataset(folder, config)`` by a fresh interpreter using ``cache``."""
    code = (
        "import json, sys\nfrom datasets import load_dataset\n"
        f"print(json.dumps({{c: load_dataset(sys.argv[1], c, split='train').num_rows for c in {CONFIGS!r}}}))"
    )
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code, str(dataset)], env=env, capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_two_builds_of_one_folder_read_fresh_in_two_processes_sharing_one_cache(tmp_path):
    dataset, cache = tmp_path / "dataset", tmp_path / "hf_datasets_cache"
    write_work_dir(tmp_path / "first", videos=3)
    build_dataset(tmp_path / "first", dataset)
    assert rows_in_a_new_process(dataset, cache) == {"captions": 3, "qa": 3, "stage1": 6}
    write_work_dir(tmp_path / "second", videos=5)
    build_dataset(tmp_path / "second", dataset)
    assert rows_in_a_new_process(dataset, cache) == {"captions": 5, "qa": 5, "stage1": 10}
    for config in CONFIGS:  # the first build's files are gone
        assert len(list((dataset / config).glob("*.parquet"))) == 1
