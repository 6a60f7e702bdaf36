"""The `prolongvid` model through lmms-eval's own CLI on a local task: registered by entry point, same answers as
the built-in runner. Needs `pip install --no-deps lmms-eval==0.7.3` plus the `eval` extra; skipped without it."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evaluation.fixtures import write_fixture, write_lmms_eval_task
from evaluation.runner import EvaluationConfig, run_evaluation

lmms_eval = pytest.importorskip("lmms_eval")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
REPO = Path(__file__).resolve().parents[2]


def _entry_point_path(tmp_path: Path) -> list[str]:
    """Where Python finds the kit's `lmms_eval.models` entry point: the installed kit's metadata when it declares
    it, else a metadata folder declaring what pyproject.toml declares (an editable install of another checkout)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["lmms_eval.models"]
    installed = importlib.metadata.entry_points(group="lmms_eval.models")
    if {(ep.name, ep.value) for ep in installed} >= set(declared.items()):
        return []
    info = tmp_path / "entry_points" / "prolongvid_eval_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prolongvid-eval-entry-point\nVersion: 0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in declared.items())
    (info / "entry_points.txt").write_text(f"[lmms_eval.models]\n{lines}")
    return [str(info.parent)]


def test_lmms_eval_cli_runs_the_plugin_like_the_builtin_runner(tiny_checkpoint, tmp_path):
    try:
        import filelock._api  # noqa: F401  (lmms-eval 0.7.3's simple_evaluate imports it)
    except ImportError:
        pytest.fail('lmms-eval 0.7.3 needs filelock 3.x: pip install "filelock>=3.10,<4" (the eval extra)')
    data = write_fixture("videomme", tmp_path / "data", num_videos=2, questions_per_video=2, num_frames=12)
    task_dir = write_lmms_eval_task(tmp_path / "tasks", data, max_new_tokens=4)

    builtin = tmp_path / "builtin"
    run_evaluation(
        EvaluationConfig(
            model=str(tiny_checkpoint), benchmark="videomme", data=str(data), out=str(builtin), frames=[4],
            dtype="float32", max_new_tokens=4, num_workers=0, device="cpu",
        )
    )  # fmt: skip
    replies = {}
    for line in (builtin / "predictions-0.jsonl").read_text().splitlines():
        record = json.loads(line)
        replies[record["question_id"]] = record["reply"]

    paths = [str(REPO), *_entry_point_path(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    command = [
        sys.executable, "-m", "lmms_eval", "--model", "prolongvid",
        "--model_args", f"pretrained={tiny_checkpoint},num_frames=4,dtype=float32,device=cpu",
        "--tasks", "prolongvid_tiny_videomme", "--include_path", str(task_dir), "--batch_size", "1",
        "--log_samples", "--output_path", str(tmp_path / "lmms"),
    ]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "prolongvid_tiny_videomme" in completed.stdout

    samples_file = next((tmp_path / "lmms").rglob("*samples_prolongvid_tiny_videomme.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    rows = pq.read_table(next((data / "videomme").glob("test-*.parquet"))).to_pylist()
    assert len(samples) == len(rows) == 4
    for sample in samples:
        question_id = rows[sample["doc_id"]]["question_id"]
        assert sample["input"].startswith("Select the best answer to the following multiple-choice question")
        resps = sample["filtered_resps"]
        assert (resps[0] if isinstance(resps, list) else resps) == replies[question_id]
