"""Typed records keep the work dir's JSONL format: lines written before the types existed load, resume and build."""

import json

from datasets import load_dataset

from dataset_builder.build import build_dataset
from dataset_builder.records import AnnotationRecord, LocalRecord
from dataset_builder.segmentation import Segment

# Lines in the format the pipeline has always written (the dict literals its modules used to build).
LOCAL_LINE = {
    "key": "3f" * 32,
    "video_id": "PMV/long",
    "fingerprint": "a1b2c3d4e5f6a1b2c3d4e5f6",
    "duration": 75.0,
    "fps": 2.0,
    "width": 64,
    "height": 64,
    "decode_size": [64, 64],
    "timestamps": [float(t) for t in range(75)],
    "segmentation": "semantic",
    "segments": [
        {"start": 0.0, "end": 25.0, "first_frame": 0, "last_frame": 24},
        {"start": 25.0, "end": 75.0, "first_frame": 25, "last_frame": 74},
    ],
    "frame_models": {"captioner": "test/colour-captioner", "embedder": "test/colour-embedder"},
}
ANNOTATION_LINE = {
    "video_id": "PMV/long",
    "video": "/data/PMV/long.mp4",
    "source": "PMV",
    "fingerprint": "a1b2c3d4e5f6a1b2c3d4e5f6",
    "duration": 75.0,
    "fps": 2.0,
    "segmentation": "semantic",
    "segments": [{"start": 0.0, "end": 25.0, "caption": "A red room."}, {"start": 25.0, "end": 75.0, "caption": "A lawn."}],
    "video_caption": "A red room, then a lawn.",
    "qa": [
        {"task_type": "summarization", "question": "Sum up?", "answer": "Room, lawn.", "strategy": "global",
         "segment_index": None, "prompt_version": "qa_global@1.0"},
        {"task_type": "temporal", "question": "What comes first?", "answer": "The room.",
         "strategy": "multi_segment", "segment_index": 0, "prompt_version": "qa_multi_segment@1.0"},
    ],
    "prompt_versions": {"captions": ["segment_caption@1.0", "video_caption@1.0"],
                        "qa": ["qa_global@1.0", "qa_multi_segment@1.0"]},
    "models": {"api": "gpt-4o", "captioner": "test/colour-captioner", "embedder": "test/colour-embedder"},
    "time": 1767225600.0,
}  # fmt: skip


def test_local_line_round_trips_and_reads_by_attribute():
    record = LocalRecord.from_dict(json.loads(json.dumps(LOCAL_LINE)))
    assert record.decode_size == (64, 64) and record.timestamps[-1] == 74.0
    assert record.segments[1] == Segment(start=25.0, end=75.0, first_frame=25, last_frame=74)
    assert json.dumps(record.to_dict(), sort_keys=True) == json.dumps(LOCAL_LINE, sort_keys=True)


def test_annotation_line_round_trips_and_reads_by_attribute():
    record = AnnotationRecord.from_dict(json.loads(json.dumps(ANNOTATION_LINE)))
    assert [s.caption for s in record.segments] == ["A red room.", "A lawn."]
    assert [(q.strategy, q.segment_index) for q in record.qa] == [("global", None), ("multi_segment", 0)]
    # A line from before `relative_video` existed gains the file name (what the captions table publishes).
    assert record.relative_video == "long.mp4"
    assert json.dumps(record.to_dict(), sort_keys=True) == json.dumps(
        {**ANNOTATION_LINE, "relative_video": "long.mp4"}, sort_keys=True
    )
    line = {**ANNOTATION_LINE, "relative_video": "PMV/long.mp4"}
    assert AnnotationRecord.from_dict(line).to_dict() == line


def test_a_work_dir_written_in_the_old_format_builds(tmp_path):
    (tmp_path / "work" / "annotations").mkdir(parents=True)
    (tmp_path / "work" / "annotations" / "shard-00000-of-00001.jsonl").write_text(json.dumps(ANNOTATION_LINE) + "\n")
    build_dataset(tmp_path / "work", tmp_path / "dataset")
    cache = str(tmp_path / "hf")
    captions = load_dataset(str(tmp_path / "dataset"), "captions", split="train", cache_dir=cache)
    assert captions[0]["segments"] == ANNOTATION_LINE["segments"] and captions[0]["video"] == "long.mp4"
    assert json.loads(captions[0]["models"]) == ANNOTATION_LINE["models"]
    qa = load_dataset(str(tmp_path / "dataset"), "qa", split="train", cache_dir=cache)
    assert qa["strategy"] == ["global", "multi_segment"] and qa["question"] == ["Sum up?", "What comes first?"]
    stage1 = load_dataset(str(tmp_path / "dataset"), "stage1", split="train", cache_dir=cache)
    assert [row["messages"][1]["content"][0]["text"] for row in stage1] == [
        "A red room, then a lawn.",
        "Room, lawn.",
        "The room.",
    ]
