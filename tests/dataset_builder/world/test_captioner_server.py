"""The world captioner answers the kit's real prompts (rendered by plan.py's request builders) exactly: captions from
JPEG frames, the merged video caption, and QA of exactly the task types and count asked, valid for the pipeline and
correct for the timeline the descriptions state."""

import io
import json
import re
import subprocess
import sys

import numpy as np
import openai
import pytest
from PIL import Image

from dataset_builder.api import ChatRequest
from dataset_builder.plan import PlanSettings, qa_requests, segment_caption_requests, video_caption_request
from dataset_builder.records import LocalRecord
from dataset_builder.schemas import STRATEGY_TASK_TYPES, parse_qa_response
from dataset_builder.segmentation import Segment
from dataset_builder.world.captioner_server import answer, identify_prompt
from dataset_builder.world.language import describe_video, parse_description
from dataset_builder.world.render import render_frame
from dataset_builder.world.timeline import Appearance, Flash, Scene, Timeline

TRUTH = Timeline(
    0, 100.0, (Scene(0.0, 40.0, "navy"), Scene(40.0, 70.0, "maroon"), Scene(70.0, 100.0, "teal")),
    (Appearance(5.0, 20.0, "circle", "red", True), Appearance(45.0, 62.0, "square", "white", False),
     Appearance(75.0, 90.0, "triangle", "blue", True)),
    (Flash(25.0, 28.0, "yellow"),),
)  # fmt: skip


def jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def local_record(segments) -> LocalRecord:
    return LocalRecord("k", "world/a", "f00d", 100.0, 1.0, 64, 64, (64, 64), tuple(float(t) for t in range(100)),
                       "semantic", tuple(segments), {})  # fmt: skip


def body(request: ChatRequest, frames: list[bytes] = ()) -> dict:
    params = {"model": "world", "temperature": 0.0, "max_tokens": 2048, "image_detail": "low"}
    return request.body(params, list(frames))


SEGMENTS = (Segment(0.0, 40.0, 0, 39), Segment(40.0, 55.0, 40, 54), Segment(55.0, 70.0, 55, 69),
            Segment(70.0, 100.0, 70, 99))  # fmt: skip


def segment_captions(settings: PlanSettings) -> list[str]:
    frames = {float(t): jpeg(render_frame(TRUTH.state_at(float(t)))) for t in range(100)}
    requests, _ = segment_caption_requests(local_record(SEGMENTS), lambda times: [frames[t] for t in times], settings)
    return [answer(body(r, r.images())) for r in requests]


@pytest.mark.parametrize("frames_per_segment", [120, 8])
def test_segment_captions_from_frames_and_the_merged_video_caption(frames_per_segment):
    captions = segment_captions(PlanSettings(frames_per_segment=frames_per_segment))
    if frames_per_segment == 120:  # every 1-fps frame: times exact
        assert captions[1] == "From 40s to 55s the background is maroon. At 45s a white square enters, moves from right " \
            "to left and leaves at 55s."  # fmt: skip
    merged = answer(body(video_caption_request(local_record(SEGMENTS), captions)))
    parsed = parse_description(merged)
    assert [s.background for s in parsed.scenes] == ["navy", "maroon", "teal"]
    assert [a.name for a in parsed.appearances] == ["red circle", "white square", "blue triangle"]
    assert [f.colour for f in parsed.flashes] == (["yellow"] if frames_per_segment == 120 else [])  # 5 s apart: missed
    tolerance = 1.0 if frames_per_segment == 120 else 5.0  # 8 frames of 40 s are 5 s apart
    for p, t in zip(parsed.appearances + parsed.scenes, TRUTH.appearances + TRUTH.scenes):
        assert abs(p.start - t.start) <= tolerance and abs(p.end - t.end) <= tolerance, (p, t)
    if frames_per_segment == 120:
        assert parsed == TRUTH


def test_qa_of_every_strategy_has_the_types_and_counts_asked_and_correct_answers():
    settings = PlanSettings(questions_per_type=4)
    captions = segment_captions(settings)
    video_caption = describe_video(TRUTH)
    plans = qa_requests(local_record(SEGMENTS), video_caption, captions, settings)
    assert [strategy for strategy, _, _ in plans] == ["global", "multi_segment", "single_segment"]
    for strategy, index, request in plans:
        content = answer(body(request))
        assert answer(body(request)) == content  # deterministic
        items, problems = parse_qa_response(content, STRATEGY_TASK_TYPES[strategy])
        assert problems == []
        for task_type in STRATEGY_TASK_TYPES[strategy]:
            assert sum(item["task_type"] == task_type for item in items) == 4
        for item in items:
            stem = item["question"].split("\n")[0]
            if stem == "How many scenes does the video have?":
                assert item["answer"].startswith("3")
            if stem == "Which object appears right after the red circle?":
                assert "white square" in item["answer"]
            if stem == "The screen briefly flashes a single colour. Which colour?":
                assert "yellow" in item["answer"]
            if stem == "What colour is the background when the white square appears?":
                assert "maroon" in item["answer"]
        if strategy == "single_segment":  # about what that segment shows: its object, or a moment inside it
            segment = SEGMENTS[index]
            inside = [a for a in TRUTH.appearances if segment.start <= a.start < segment.end]
            for item in items:
                stem = item["question"].split("\n")[0]
                moment = re.search(r"(\d+) seconds into", stem)
                if moment:
                    assert segment.start <= int(moment.group(1)) < segment.end
                    assert item["answer"] == f"{TRUTH.scene_at(int(moment.group(1))).background}."
                elif "flash" in stem:
                    assert any(segment.start <= f.start < segment.end for f in TRUTH.flashes), stem
                else:
                    assert any(a.colour in stem or a.shape in stem for a in inside), stem


def test_a_general_qa_request_of_three_asks_one_attribute_one_counting_and_one_needle_question():
    """The families in turn: 11 attribute stems must not crowd out the 2 counting and 2 flash stems."""
    settings = PlanSettings(questions_per_type=3)
    plans = qa_requests(local_record(SEGMENTS), describe_video(TRUTH), segment_captions(settings), settings)
    (request,) = [request for strategy, _, request in plans if strategy == "global"]
    items, problems = parse_qa_response(answer(body(request)), STRATEGY_TASK_TYPES["global"])
    assert problems == []
    stems = [item["question"].split("\n")[0] for item in items if item["task_type"] == "general_qa"]
    kinds = sorted(
        "counting" if s.startswith("How many") else "needle" if "flash" in s else "attribute" for s in stems
    )
    assert kinds == ["attribute", "counting", "needle"], stems


def test_unknown_prompts_are_refused_with_the_list():
    with pytest.raises(ValueError, match="only the kit's prompts"):
        identify_prompt("Tell me a joke.")


def test_serves_standalone_and_prints_its_port():
    process = subprocess.Popen([sys.executable, "-m", "dataset_builder.world.captioner_server", "--port", "0"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = int(process.stdout.readline().split()[1])
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY")
        request = qa_requests(local_record(SEGMENTS[:1]), "From 0s to 100s the background is olive.", ["x"],
                              PlanSettings())[0][2]  # fmt: skip
        reply = client.chat.completions.create(**body(request))
        items = json.loads(reply.choices[0].message.content)["qa"]
        assert {item["task_type"] for item in items} == set(STRATEGY_TASK_TYPES["global"])
    finally:
        process.stdin.close()
        assert process.wait(timeout=30) == 0
