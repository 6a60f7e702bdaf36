"""Scores from hand-made predictions, and the report's tables (per-duration layout), markdown, JSON and PNG."""

import json

import pytest

from evaluation.metrics import summarize
from evaluation.report import write_report
from evaluation.store import Prediction


def prediction(qid, correct, group=None, category=None, choice="A", reply="A", error=None, num_options=4, answer="A"):
    return Prediction(
        settings_key="k",
        benchmark="b",
        question_id=qid,
        model="m",
        frames=8,
        sampling="uniform",
        answer=answer,
        num_options=num_options,
        reply=reply,
        choice=choice,
        correct=correct,
        duration_group=group,
        category=category,
        error=error,
    )


def test_videomme_summary_per_duration_and_category():
    predictions = [
        prediction("1", True, "short", "OCR"),
        prediction("2", False, "short", "OCR", choice=None, reply="hmm"),
        prediction("3", True, "medium", "Counting"),
        prediction("4", True, "long", "Counting"),
        prediction("5", False, "long", "Counting", choice="B"),
        prediction("6", False, "long", "OCR", choice="C"),
        prediction("7", False, "long", "OCR", choice=None, reply=None, error="missing video"),
    ]
    summary = summarize("videomme", predictions)
    assert summary["answered"] == 6 and summary["correct"] == 3 and summary["accuracy"] == 50.0
    assert summary["parse_failures"] == 1
    assert summary["skipped"] == {"7": "missing video"}
    assert list(summary["by_duration"]) == ["short", "medium", "long"]
    assert summary["by_duration"]["short"]["accuracy"] == 50.0
    assert summary["by_duration"]["medium"]["accuracy"] == 100.0
    assert summary["by_duration"]["long"]["accuracy"] == pytest.approx(100 / 3, abs=0.01)
    assert summary["by_category"]["OCR"]["accuracy"] == pytest.approx(100 / 3, abs=0.01)
    assert summary["by_category"]["Counting"]["accuracy"] == pytest.approx(200 / 3, abs=0.01)
    assert summary["headline"] == summary["accuracy"]


def test_mlvu_m_avg_is_the_mean_over_task_types():
    predictions = [prediction(str(i), i < 1, category="count") for i in range(4)]  # 25 %
    predictions += [prediction(f"n{i}", True, category="needle") for i in range(2)]  # 100 %
    summary = summarize("mlvu_dev", predictions)
    assert summary["m_avg"] == 62.5  # (25 + 100) / 2, not the overall 50 %
    assert summary["accuracy"] == 50.0
    assert summary["headline"] == 62.5


def test_longvideobench_reports_lmms_eval_random_guess_figure():
    predictions = [
        prediction("1", True, "15", reply="A", choice="A"),
        prediction("2", False, "15", reply="no idea", choice=None, num_options=5),  # lmms-eval: 1/5 expected
        prediction("3", False, "600", reply="Answer: B", choice="B"),  # lmms-eval parses "A" from "Answer": right
    ]
    summary = summarize("longvideobench_val", predictions)
    assert summary["accuracy"] == pytest.approx(100 / 3, abs=0.01)
    assert summary["accuracy_lmms_eval"] == pytest.approx(100 * (1 + 0.2 + 1) / 3, abs=0.01)
    assert list(summary["by_duration"]) == ["15", "600"]


def _result(benchmark, frames, accuracy, by_duration):
    return {
        "benchmark": benchmark,
        "frames": frames,
        "sampling": "uniform",
        "created": "2026-01-01T00:00:00",
        "model_revision": "local:abc",
        "kit_version": "0.1.0",
        "wall_seconds": 1.0,
        "metrics": {
            "headline": accuracy,
            "accuracy": accuracy,
            "answered": 10,
            "parse_failures": 1,
            "skipped": {},
            "by_duration": {g: {"accuracy": a} for g, a in by_duration.items()},
            "by_category": {"OCR": {"accuracy": accuracy}},
        },
    }


def test_report_has_the_paper_per_duration_layout(tmp_path):
    for run, offset in (("stage1", 0.0), ("stage3", 10.0)):
        for frames in (32, 128):
            for benchmark in ("videomme", "videomme_w_subtitle"):
                base = frames / 4 + offset + (5 if benchmark == "videomme_w_subtitle" else 0)
                result = _result(benchmark, frames, base, {"short": base + 2, "medium": base, "long": base - 2})
                (tmp_path / run).mkdir(exist_ok=True)
                (tmp_path / run / f"results-{benchmark}-{frames}f.json").write_text(json.dumps(result))
    paths = write_report([tmp_path / "stage1", tmp_path / "stage3"], tmp_path / "report")
    markdown = paths["markdown"].read_text()
    assert (
        "| Run | Frames | Short (w/o subs) | Medium (w/o subs) | Long (w/o subs) | Overall (w/o subs) | "
        "Short (w/ subs) | Medium (w/ subs) | Long (w/ subs) | Overall (w/ subs) |"
    ) in markdown
    # stage3 at 128 frames: w/o subs base 42, w/ subs base 47
    assert "| stage3 | 128 | 44.0 | 42.0 | 40.0 | 42.0 | 49.0 | 47.0 | 45.0 | 47.0 |" in markdown
    assert "| stage1 | 32 | 8.0 | 13.0 |" in markdown  # overview: VideoMME w/o subs, w/ subs
    tables = json.loads(paths["json"].read_text())["tables"]
    assert tables["videomme_per_duration"]["rows"][0][:3] == ["stage1", "32", 10.0]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from evaluation.__main__ import main

    assert main(["report", str(tmp_path / "stage1"), "--out", str(tmp_path / "cli"), "--labels", "S1"]) == 0
    assert "| S1 | 128 |" in (tmp_path / "cli" / "report.md").read_text()


def test_report_of_an_empty_directory_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m evaluation run"):
        write_report([tmp_path], tmp_path / "out")
