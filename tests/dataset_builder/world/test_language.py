"""The description grammar round-trips: describe(ground truth) -> parse gives the same timeline (times within 1 s),
descriptions of perceived segments merge into the video's timeline, and the sentences read as the grammar says."""

import pytest

from dataset_builder.world.language import (
    describe_segment,
    describe_video,
    merge_timelines,
    parse_description,
    timeline_from_observations,
)
from dataset_builder.world.perception import perceive
from dataset_builder.world.render import render_frame
from dataset_builder.world.timeline import Appearance, Scene, Timeline, sample_timeline


def assert_same(parsed: Timeline, truth: Timeline, tolerance: float) -> None:
    assert parsed.duration == pytest.approx(truth.duration, abs=tolerance)
    assert [s.background for s in parsed.scenes] == [s.background for s in truth.scenes]
    assert [(a.name, a.left_to_right) for a in parsed.appearances] == [
        (a.name, a.left_to_right) for a in truth.appearances
    ]
    assert [f.colour for f in parsed.flashes] == [f.colour for f in truth.flashes]
    for parsed_items, true_items in ((parsed.scenes, truth.scenes), (parsed.appearances, truth.appearances),
                                     (parsed.flashes, truth.flashes)):  # fmt: skip
        for p, t in zip(parsed_items, true_items):
            assert abs(p.start - t.start) <= tolerance and abs(p.end - t.end) <= tolerance, (p, t)


@pytest.mark.parametrize("band", ["short", "medium", "long"])
def test_ground_truth_round_trips_within_a_second(band):
    for seed in range(20):
        truth = sample_timeline(seed, band)
        assert_same(parse_description(describe_video(truth)), truth, tolerance=1.0)


def test_sentences_are_the_documented_english():
    truth = Timeline(0, 30.0, (Scene(0.0, 30.0, "olive"),), (Appearance(4.4, 9.6, "triangle", "white", False),))
    assert describe_video(truth) == (
        "From 0s to 30s the background is olive. At 4s a white triangle enters, moves from right to left and leaves "
        "at 10s."
    )


def perceived(truth: Timeline, start: int, end: int):
    times = [float(t) for t in range(start, end)]
    return times, [perceive(render_frame(truth.state_at(t))) for t in times]


@pytest.mark.parametrize("band", ["short", "medium", "long"])
def test_segments_described_from_frames_merge_into_the_video(band):
    """Segments cut anywhere (inside scenes and objects): their descriptions, parsed and merged, are the video."""
    for seed in range(1 if band == "long" else 2):
        truth = sample_timeline(seed, band)
        end = round(truth.duration)
        bounds = sorted({0, end, *(round(end * f) for f in (0.23, 0.5, 0.81))})
        parts = [
            parse_description(describe_segment(*perceived(truth, a, b), float(a), float(b)))
            for a, b in zip(bounds, bounds[1:])
        ]
        merged = merge_timelines(parts)
        # every object is seen at least twice except in the shortest videos; those may have either direction
        seen_twice = Timeline(
            truth.seed, truth.duration, truth.scenes,
            tuple(a if a.end - a.start >= 2.5 else next(m for m in merged.appearances if m.name == a.name)
                  for a in truth.appearances),
            truth.flashes,
        )  # fmt: skip
        assert_same(merged, seen_twice, tolerance=1.0)


def test_observations_place_changes_at_their_first_frame():
    truth = Timeline(0, 12.0, (Scene(0.0, 6.0, "navy"), Scene(6.0, 12.0, "teal")),
                     (Appearance(2.0, 5.0, "square", "red", True),))  # fmt: skip
    parsed = timeline_from_observations(*perceived(truth, 0, 12), 0.0, 12.0)
    assert parsed == truth


def test_bad_descriptions_are_named():
    with pytest.raises(ValueError, match="No scene"):
        parse_description("A cat sleeps on a sofa.")
    with pytest.raises(ValueError, match="'pink'"):
        parse_description("From 0s to 10s the background is pink.")
