"""The world's description grammar: English sentences with times that state a :class:`~.timeline.Timeline`, and the
parser that reads them back.

A description is a sequence of sentences in time order, one fact each (times in whole seconds from the start of the
video)::

    From 0s to 15s the background is navy.
    At 3s a red circle enters, moves from left to right and leaves at 11s.
    At 12s the screen flashes white for 3 seconds.

:func:`describe_video` writes a timeline (the ground truth, or one merged from segment descriptions);
:func:`describe_segment` writes what a segment's perceived frames show (:func:`timeline_from_observations`);
:func:`parse_description` reads any of them back into a :class:`~.timeline.Timeline`, and :func:`merge_timelines` joins
the descriptions of consecutive segments (a scene, an object or a flash that continues over a segment boundary is one).
Times survive a round trip to within 1 s (they are rounded to whole seconds; frames are 1 s apart).

Example:
    >>> from dataset_builder.world.language import describe_video, parse_description
    >>> from dataset_builder.world.timeline import Appearance, Flash, Scene, Timeline
    >>> timeline = Timeline(0, 40.0, (Scene(0.0, 15.0, "navy"), Scene(15.0, 40.0, "olive")),
    ...                     (Appearance(3.0, 11.0, "circle", "red", True),), (Flash(20.0, 23.0, "white"),))
    >>> text = describe_video(timeline)
    >>> print(text)
    From 0s to 15s the background is navy. At 3s a red circle enters, moves from left to right and leaves at 11s. From 15s to 40s the background is olive. At 20s the screen flashes white for 3 seconds.
    >>> parse_description(text) == timeline
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .perception import Observation
from .timeline import BACKGROUNDS, OBJECT_COLOURS, SHAPES, Appearance, Flash, Scene, Timeline

_NUMBER = r"(\d+(?:\.\d+)?)"
_SCENE = re.compile(rf"From {_NUMBER}s to {_NUMBER}s the background is ([a-z]+)\.")
_APPEARANCE = re.compile(
    rf"At {_NUMBER}s an? ([a-z]+) ([a-z]+) enters, moves from (left to right|right to left) and leaves at {_NUMBER}s\."
)
_FLASH = re.compile(rf"At {_NUMBER}s the screen flashes ([a-z]+) for {_NUMBER} seconds?\.")
_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def _seconds(value: float) -> str:
    return f"{round(value)}s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def describe_video(timeline: Timeline) -> str:
    """The sentences of ``timeline`` in time order (a scene's sentence comes before the events that start in it)."""
    sentences: list[tuple[float, int, str]] = []
    for scene in timeline.scenes:
        text = f"From {_seconds(scene.start)} to {_seconds(scene.end)} the background is {scene.background}."
        sentences.append((scene.start, 0, text))
    for appearance in timeline.appearances:
        direction = "from left to right" if appearance.left_to_right else "from right to left"
        sentences.append((appearance.start, 1, (
            f"At {_seconds(appearance.start)} {_article(appearance.colour)} {appearance.name} enters, moves "
            f"{direction} and leaves at {_seconds(appearance.end)}."
        )))  # fmt: skip
    for flash in timeline.flashes:
        length = max(1, round(flash.end - flash.start))
        unit = "second" if length == 1 else "seconds"
        sentences.append(
            (flash.start, 2, f"At {_seconds(flash.start)} the screen flashes {flash.colour} for {length} {unit}.")
        )
    return " ".join(text for _, _, text in sorted(sentences, key=lambda item: (round(item[0]), item[1])))


def _check(value: str, names: Sequence[str], what: str, sentence: str) -> str:
    if value not in names:
        raise ValueError(f"{sentence!r} names the {what} {value!r}, which the world does not have ({list(names)}).")
    return value


def parse_description(text: str) -> Timeline:
    """The :class:`~.timeline.Timeline` a description states (``seed`` 0; ``duration`` = the last scene's end).

    Sentences that are not of the grammar are ignored; a description without any scene sentence is an error.
    """
    scenes, appearances, flashes = [], [], []
    for sentence in _SENTENCE_END.split(text.strip()):
        if match := _SCENE.fullmatch(sentence):
            background = _check(match.group(3), list(BACKGROUNDS), "background", sentence)
            scenes.append(Scene(float(match.group(1)), float(match.group(2)), background))
        elif match := _APPEARANCE.fullmatch(sentence):
            colour = _check(match.group(2), list(OBJECT_COLOURS), "colour", sentence)
            shape = _check(match.group(3), SHAPES, "shape", sentence)
            left_to_right = match.group(4) == "left to right"
            appearances.append(Appearance(float(match.group(1)), float(match.group(5)), shape, colour, left_to_right))
        elif match := _FLASH.fullmatch(sentence):
            colour = _check(match.group(2), list(OBJECT_COLOURS), "colour", sentence)
            start = float(match.group(1))
            flashes.append(Flash(start, start + float(match.group(3)), colour))
    if not scenes:
        raise ValueError(
            f"No scene in {text[:80]!r}: a world description states its scenes as 'From 0s to 15s the background "
            "is navy.'"
        )
    scenes.sort(key=lambda scene: scene.start)
    return Timeline(
        0, scenes[-1].end, tuple(scenes), tuple(sorted(appearances, key=lambda a: a.start)),
        tuple(sorted(flashes, key=lambda f: f.start)),
    )  # fmt: skip


def merge_timelines(parts: Sequence[Timeline]) -> Timeline:
    """One timeline from those of consecutive segments: neighbouring scenes of one background become one scene, the
    fragments of an object (no kind repeats in a world video) one appearance, touching flashes of one colour one."""
    scenes: list[Scene] = []
    for scene in sorted((s for part in parts for s in part.scenes), key=lambda s: s.start):
        if scenes and scenes[-1].background == scene.background:
            scenes[-1] = Scene(scenes[-1].start, max(scenes[-1].end, scene.end), scene.background)
        else:
            scenes.append(scene)
    fragments: dict[str, list[Appearance]] = {}
    for appearance in (a for part in parts for a in part.appearances):
        fragments.setdefault(appearance.name, []).append(appearance)
    appearances = []
    for pieces in fragments.values():
        longest = max(pieces, key=lambda a: a.end - a.start)
        start, end = min(a.start for a in pieces), max(a.end for a in pieces)
        appearances.append(Appearance(start, end, longest.shape, longest.colour, longest.left_to_right))
    flashes: list[Flash] = []
    for flash in sorted((f for part in parts for f in part.flashes), key=lambda f: f.start):
        if flashes and flashes[-1].colour == flash.colour and flash.start <= flashes[-1].end + 1.0:
            flashes[-1] = Flash(flashes[-1].start, max(flashes[-1].end, flash.end), flash.colour)
        else:
            flashes.append(flash)
    duration = scenes[-1].end if scenes else 0.0
    return Timeline(0, duration, tuple(scenes), tuple(sorted(appearances, key=lambda a: a.start)), tuple(flashes))


def timeline_from_observations(times: Sequence[float], observations: Sequence[Observation], start: float,
                               end: float) -> Timeline:  # fmt: skip
    """What the frames of ``[start, end)`` seen at ``times`` (increasing, seconds) show, as a timeline.

    A scene changes at the first frame of the new background (flash frames hide the background and belong to the
    scene around them); an object enters at its first frame and leaves one frame step after its last (the frame
    step is the median spacing of ``times``, 1 s for the pipeline's 1-fps frames); its direction is where it moved
    (an object seen once is taken to move away from the nearer edge).
    """
    if len(times) != len(observations) or not len(times):
        raise ValueError(f"Pass one time per observation (at least one), got {len(times)} and {len(observations)}.")
    times = [float(t) for t in times]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    step = gaps[len(gaps) // 2] if gaps else max(1.0, end - start)
    scenes: list[Scene] = []
    for time, observation in zip(times, observations):
        if observation.background is None:
            continue
        if scenes and scenes[-1].background == observation.background:
            continue
        if scenes:
            scenes[-1] = Scene(scenes[-1].start, time, scenes[-1].background)
        scenes.append(Scene(start if not scenes else time, end, observation.background))
    if not scenes:  # every frame a flash: the scene's background is unknown
        raise ValueError(f"The frames of {start:.0f}s-{end:.0f}s show no background (all flashes); cannot describe.")
    runs: list[tuple[str, list[int]]] = []  # (object or "flash:<colour>", frame indices), consecutive frames
    for index, observation in enumerate(observations):
        key = observation.object or (f"flash:{observation.flash}" if observation.flash else None)
        if key is None:
            continue
        if runs and runs[-1][0] == key and runs[-1][1][-1] == index - 1:
            runs[-1][1].append(index)
        else:
            runs.append((key, [index]))
    appearances, flashes = [], []
    for key, indices in runs:
        first, last = times[indices[0]], min(end, times[indices[-1]] + step)
        if key.startswith("flash:"):
            flashes.append(Flash(first, last, key.removeprefix("flash:")))
            continue
        positions = [observations[i].position for i in indices]
        moved = positions[-1] - positions[0]
        left_to_right = moved > 0 if len(indices) > 1 and moved != 0 else positions[0] <= 0.5
        seen = observations[indices[0]]
        appearances.append(Appearance(first, last, seen.shape, seen.colour, left_to_right))
    return Timeline(0, end, tuple(scenes), tuple(appearances), tuple(flashes))


def describe_segment(times: Sequence[float], observations: Sequence[Observation], start: float, end: float) -> str:
    """The description of segment ``[start, end)`` from its frames' observations at ``times`` (see
    :func:`timeline_from_observations`): what the world captioner answers a segment caption request with.

    Example:
        >>> from dataset_builder.world.perception import Observation
        >>> seen = [Observation("navy"), Observation("navy", "square", "blue", 0.2), Observation("navy", "square",
        ...         "blue", 0.6), Observation("teal")]
        >>> describe_segment([10.0, 11.0, 12.0, 13.0], seen, 10.0, 14.0)
        'From 10s to 13s the background is navy. At 11s a blue square enters, moves from left to right and leaves at 13s. From 13s to 14s the background is teal.'
    """
    return describe_video(timeline_from_observations(times, observations, start, end))
