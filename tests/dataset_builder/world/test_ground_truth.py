"""The world's ground truth: timelines keep their invariants, pixels show them, questions' answers are right.

The references here read the rendered PIXELS (background = a corner pixel, object = the pixels unlike it), never the
question generator, so a wrong timeline, renderer or question template fails.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dataset_builder.world.questions import FAMILIES, LETTERS, multiple_choice, open_questions, prompt
from dataset_builder.world.render import render_frame, write_world_video
from dataset_builder.world.timeline import BACKGROUNDS, BANDS, OBJECT_COLOURS, band_of, build_timeline, sample_timeline

SEEDS = range(12)
COLOUR_OF = {tuple(rgb): name for name, rgb in {**BACKGROUNDS, **OBJECT_COLOURS}.items()}


def timelines():
    return [sample_timeline(seed, band) for band in BANDS for seed in SEEDS]


def pixel_story(timeline):
    """Per second: (background name, object colour name or None, flash colour or None), read from the pixels."""
    story = []
    for second in range(round(timeline.duration)):
        frame = render_frame(timeline.state_at(second), size=16)
        colours = {COLOUR_OF[tuple(int(v) for v in pixel)] for pixel in np.unique(frame.reshape(-1, 3), axis=0)}
        if len(colours) == 1 and colours <= set(OBJECT_COLOURS):
            story.append((None, None, colours.pop()))
            continue
        background = COLOUR_OF[tuple(int(v) for v in frame[0, 0])]
        others = colours - {background}
        story.append((background, others.pop() if others else None, None))
    return story


@pytest.mark.parametrize("band", list(BANDS))
def test_timelines_keep_their_invariants(band):
    low, high = BANDS[band]
    for seed in SEEDS:
        timeline = sample_timeline(seed, band)
        assert low <= timeline.duration < high and band_of(timeline.duration) == band
        scenes = timeline.scenes
        assert scenes[0].start == 0 and scenes[-1].end == timeline.duration
        assert all(a.end == b.start and a.background != b.background for a, b in zip(scenes, scenes[1:]))
        kinds = [(a.shape, a.colour) for a in timeline.appearances]
        assert len(set(kinds)) == len(kinds) >= 1
        for before, after in zip(timeline.appearances, timeline.appearances[1:]):
            assert before.end <= after.start
        for appearance in timeline.appearances:
            inside = [s for s in scenes if s.start <= appearance.start and appearance.end <= s.end]
            assert len(inside) == 1, "an appearance stays inside one scene"
            for flash in timeline.flashes:
                assert appearance.end <= flash.start or flash.end <= appearance.start
        assert len(timeline.flashes) == (0 if band == "short" else 1)
        assert sample_timeline(seed, band) == timeline


def test_the_flash_is_seen_by_192_frames_and_mostly_missed_by_32():
    """The needle's length is chosen so uniform 192-frame sampling always sees it; 32 frames see it rarely."""
    seen = {32: 0, 192: 0}
    long_videos = [sample_timeline(seed, "long") for seed in range(60)]
    for timeline in long_videos:
        (flash,) = timeline.flashes
        for count in seen:
            seconds = np.linspace(0, round(timeline.duration) - 1, count).astype(int)  # the harness's sampling
            seen[count] += bool(np.any((seconds >= flash.start) & (seconds < flash.end)))
    assert seen[192] == len(long_videos)
    assert seen[32] <= 0.45 * len(long_videos)


def test_a_medium_video_flash_spans_two_rendered_frames():
    """Medium videos hold a flash too (training signal); at 1 fps it is at least two frames long, so 128 evenly
    sampled frames (stage 2) see it."""
    for seed in range(40):
        timeline = sample_timeline(seed, "medium")
        (flash,) = timeline.flashes
        assert flash.end - flash.start >= 2.0
        rendered = [t for t in range(round(timeline.duration)) if flash.start <= t < flash.end]
        assert len(rendered) >= 2
        seconds = np.linspace(0, round(timeline.duration) - 1, 128).astype(int)
        assert np.any((seconds >= flash.start) & (seconds < flash.end))


def test_frames_show_the_timeline():
    for timeline in timelines()[::5]:
        story = pixel_story(timeline)
        for second, (background, colour, flash) in enumerate(story):
            state = timeline.state_at(second)
            if state.flash is not None:
                assert flash == state.flash.colour
                continue
            assert background == state.background
            assert colour == (state.appearance.colour if state.appearance else None)


def test_encoded_video_decodes_to_the_rendered_frames(tmp_path):
    from processing import load_video

    timeline = sample_timeline(2, "medium")
    path = write_world_video(tmp_path / "w.mp4", timeline)
    frames, times = load_video(path, num_frames=40)
    assert len(frames) == 40
    for frame, time in zip(frames, times):
        expected = render_frame(timeline.state_at(float(time))).astype(int)
        assert np.abs(frame.astype(int) - expected).mean() < 2.0


def _correct_option(question):
    return question.options[LETTERS.index(question.answer)]


def test_multiple_choice_answers_agree_with_the_pixels():
    checked = {family: 0 for family in FAMILIES}
    for timeline in timelines():
        story = pixel_story(timeline)
        backgrounds = [b for b, _, _ in story if b is not None]
        scene_sequence = [b for i, b in enumerate(backgrounds) if i == 0 or b != backgrounds[i - 1]]
        objects = [c for _, c, _ in story if c is not None]
        object_runs = [c for i, c in enumerate(objects) if i == 0 or c != objects[i - 1]]
        flashes = {f for _, _, f in story if f is not None}
        for question in multiple_choice(timeline, seed=1):
            assert len(question.options) == 4 and len(set(question.options)) == 4
            answer = _correct_option(question)
            text = question.question
            if text == "How many scenes does the video have?":
                assert answer == str(len(scene_sequence))
            elif text == "What colour is the background at the start of the video?":
                assert answer == scene_sequence[0]
            elif text == "What colour is the background at the end of the video?":
                assert answer == scene_sequence[-1]
            elif text == "Which sequence of background colours does the video show?":
                assert answer == ", then ".join(scene_sequence)
            elif text.startswith("The screen briefly flashes"):
                assert {answer} == flashes
            elif text == "Which object appears first?":
                assert answer.split()[0] == object_runs[0]
            elif text == "Which object appears last?":
                assert answer.split()[0] == object_runs[-1]
            elif match := re.fullmatch(r"Which background colour comes right after (\w+)\?", text):
                position = scene_sequence.index(match.group(1))
                assert answer == scene_sequence[position + 1]
            elif text == "How many objects appear in the video?":
                assert int(answer) == len(timeline.appearances)
            checked[question.family] += 1
    assert all(checked[family] >= 10 for family in FAMILIES), checked


def test_prompt_matches_the_evaluation_harness():
    from evaluation.benchmarks import Question, get_benchmark

    timeline = build_timeline(seed=4, duration=75)
    question = multiple_choice(timeline)[0]
    harness = Question("world", "q", "v", "v.mp4", question.question,
                       tuple(f"{letter}. {option}" for letter, option in zip(LETTERS, question.options)),
                       question.answer)  # fmt: skip
    assert get_benchmark("world").prompt(harness) == prompt(question.question, question.options)


def test_open_questions_cover_the_dataset_task_types():
    from dataset_builder.schemas import TASK_TYPES

    pairs = open_questions(sample_timeline(0, "long"))
    assert {pair.task_type for pair in pairs} == set(TASK_TYPES)
    assert {pair.family for pair in pairs} == {*FAMILIES, "creative"}
    assert all(pair.question.strip() and pair.answer.strip() for pair in pairs)
    counts = {pair.question: pair for pair in pairs if pair.family == "counting"}
    assert counts["How many scenes does the video have?"].answer == f"{len(sample_timeline(0, 'long').scenes)}."
