"""The synthetic world's ground truth: a video is a :class:`Timeline` of scenes, object appearances and flashes.

A video of ``duration`` seconds is cut into consecutive **scenes**, each with a named background colour (no two
neighbours alike). **Appearances** are objects of a named shape and colour that enter a scene, move across it and
leave; at most one is on screen at a time, each stays inside one scene and no (shape, colour) pair repeats within a
video, so "the red circle" names one event. Medium and long videos (2-20 minutes) hold one **flash**: the whole
frame lights up in one colour for a few seconds -- in a long video (the paper's third duration band, 5-20 minutes)
the needle of a needle-in-a-haystack question; in a medium one the same skill at a shorter length, for training (the
benchmark asks the needle family about long videos only). Its length is ``1.5 * duration / 192`` s and at least 2 s,
so 192 evenly sampled frames always see it and 32 frames mostly miss it.

Everything is deterministic from ``(seed, duration)``; :func:`sample_timeline` draws a duration from a band too.

Example:
    >>> from dataset_builder.world.timeline import sample_timeline
    >>> timeline = sample_timeline(seed=3, band="long")
    >>> 300 <= timeline.duration < 1200, len(timeline.flashes)
    (True, 1)
    >>> state = timeline.state_at(timeline.scenes[0].start)
    >>> state.background == timeline.scenes[0].background
    True
    >>> sample_timeline(seed=3, band="long") == timeline  # the seed decides everything
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Named colours (RGB). Backgrounds are dark, objects and flashes bright, so the two never meet.
BACKGROUNDS = {
    "black": (15, 15, 15),
    "navy": (20, 30, 120),
    "maroon": (120, 20, 30),
    "olive": (95, 100, 15),
    "teal": (15, 105, 105),
    "purple": (85, 25, 115),
}
OBJECT_COLOURS = {
    "red": (240, 50, 40),
    "green": (50, 215, 60),
    "blue": (70, 140, 255),
    "yellow": (245, 225, 40),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle")
FLASH_COLOURS = OBJECT_COLOURS
# Duration bands (seconds) of the paper's short / medium / long videos, matching the dataset's stage splits.
BANDS = {"short": (10.0, 120.0), "medium": (120.0, 300.0), "long": (300.0, 1190.0)}
# Scenes and appearances per band (inclusive ranges).
SCENES_PER_BAND = {"short": (1, 3), "medium": (2, 4), "long": (3, 5)}
APPEARANCES_PER_BAND = {"short": (1, 3), "medium": (2, 4), "long": (2, 5)}
FLASH_FRAMES = 192  # the frame budget that always sees the flash
FLASH_BANDS = ("medium", "long")  # the bands whose videos hold a flash
MIN_FLASH_SECONDS = 2.0  # at 1 fps a flash spans at least two rendered frames


@dataclass(frozen=True)
class Scene:
    start: float
    end: float
    background: str


@dataclass(frozen=True)
class Appearance:
    """An object on screen from ``start`` to ``end`` (s), moving from the left edge to the right (or back)."""

    start: float
    end: float
    shape: str
    colour: str
    left_to_right: bool

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Flash:
    start: float
    end: float
    colour: str


@dataclass(frozen=True)
class FrameState:
    """What a frame at one time shows: the background, the object (and where, 0..1 across) or a flash."""

    background: str
    appearance: Appearance | None = None
    position: float = 0.5
    flash: Flash | None = None


@dataclass(frozen=True)
class Timeline:
    """The ground truth of one world video (see module docstring); times in seconds from 0 to ``duration``."""

    seed: int
    duration: float
    scenes: tuple[Scene, ...]
    appearances: tuple[Appearance, ...]
    flashes: tuple[Flash, ...] = ()

    @property
    def band(self) -> str:
        return band_of(self.duration)

    def scene_at(self, time: float) -> Scene:
        for scene in self.scenes:
            if time < scene.end:
                return scene
        return self.scenes[-1]

    def state_at(self, time: float) -> FrameState:
        background = self.scene_at(time).background
        for flash in self.flashes:
            if flash.start <= time < flash.end:
                return FrameState(background, flash=flash)
        for appearance in self.appearances:
            if appearance.start <= time < appearance.end:
                progress = (time - appearance.start) / (appearance.end - appearance.start)
                position = progress if appearance.left_to_right else 1.0 - progress
                return FrameState(background, appearance, position)
        return FrameState(background)

    def scene_of(self, appearance: Appearance) -> Scene:
        return self.scene_at((appearance.start + appearance.end) / 2)


def band_of(duration: float) -> str:
    """``"short"`` / ``"medium"`` / ``"long"`` for a duration in seconds (:data:`BANDS`)."""
    for band, (low, high) in BANDS.items():
        if low <= duration < high:
            return band
    raise ValueError(f"A world video lasts {BANDS['short'][0]:.0f} s to {BANDS['long'][1]:.0f} s, not {duration} s.")


def flash_seconds(duration: float) -> float:
    """Length of a video's flash: 1.5 sampling intervals of :data:`FLASH_FRAMES` evenly spaced frames, at least
    :data:`MIN_FLASH_SECONDS`."""
    return max(MIN_FLASH_SECONDS, 1.5 * duration / FLASH_FRAMES)


def _scene_cuts(rng: np.random.Generator, duration: float, count: int) -> list[float]:
    """``count + 1`` boundaries from 0 to ``duration``; every scene lasts at least half of an even share."""
    shares = rng.uniform(0.5, 1.5, size=count)
    bounds = np.concatenate([[0.0], np.cumsum(shares) / shares.sum() * duration])
    return [round(float(b)) for b in bounds[:-1]] + [duration]


def build_timeline(seed: int, duration: float) -> Timeline:
    """The timeline of a ``duration``-second video, drawn from ``seed``."""
    band = band_of(duration)
    rng = np.random.default_rng([seed, int(duration * 1000)])
    num_scenes = int(rng.integers(SCENES_PER_BAND[band][0], SCENES_PER_BAND[band][1] + 1))
    cuts = _scene_cuts(rng, duration, num_scenes)
    backgrounds: list[str] = []
    for _ in range(num_scenes):
        choices = [name for name in BACKGROUNDS if not backgrounds or name != backgrounds[-1]]
        backgrounds.append(choices[int(rng.integers(len(choices)))])
    scenes = tuple(Scene(float(a), float(b), colour) for a, b, colour in zip(cuts, cuts[1:], backgrounds))

    flashes: tuple[Flash, ...] = ()
    busy: list[tuple[float, float]] = []
    if band in FLASH_BANDS:
        length = flash_seconds(duration)
        start = float(rng.uniform(0.1 * duration, 0.9 * duration - length))
        flashes = (Flash(start, start + length, list(FLASH_COLOURS)[int(rng.integers(len(FLASH_COLOURS)))]),)
        busy.append((start - 1.0, start + length + 1.0))

    num_appearances = int(rng.integers(APPEARANCES_PER_BAND[band][0], APPEARANCES_PER_BAND[band][1] + 1))
    kinds = [(shape, colour) for shape in SHAPES for colour in OBJECT_COLOURS]
    picked = rng.choice(len(kinds), size=num_appearances, replace=False)
    # Each appearance gets its own scene slot: the scenes in turn, then their halves, and so on.
    slots = [(scene.start, scene.end) for scene in scenes]
    while len(slots) < num_appearances:
        longest = max(range(len(slots)), key=lambda i: slots[i][1] - slots[i][0])
        start, end = slots.pop(longest)
        slots[longest:longest] = [(start, (start + end) / 2), ((start + end) / 2, end)]
    chosen = sorted(rng.choice(len(slots), size=num_appearances, replace=False))
    appearances = []
    for kind, slot in zip(picked, chosen):
        start, end = slots[slot]
        length = (end - start) * float(rng.uniform(0.5, 0.75))
        begin = start + float(rng.uniform(0.1, 0.9)) * (end - start - length)
        begin, finish = _avoid(begin, begin + length, busy)
        shape, colour = kinds[int(kind)]
        appearances.append(Appearance(round(begin, 1), round(finish, 1), shape, colour, bool(rng.integers(2))))
    return Timeline(seed, float(duration), scenes, tuple(appearances), flashes)


def _avoid(start: float, end: float, busy: list[tuple[float, float]]) -> tuple[float, float]:
    """Shorten ``[start, end)`` to its longer part outside every busy interval."""
    for low, high in busy:
        if start < high and low < end:
            before, after = (start, min(end, low)), (max(start, high), end)
            start, end = max(before, after, key=lambda part: part[1] - part[0])
    return start, end


def sample_timeline(seed: int, band: str) -> Timeline:
    """A timeline whose duration is drawn from ``band`` (log-uniform within :data:`BANDS`) by ``seed``."""
    low, high = BANDS[band]
    rng = np.random.default_rng([seed, list(BANDS).index(band)])
    duration = float(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
    return build_timeline(seed, min(max(duration, low), high - 1))
