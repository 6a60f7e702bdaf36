"""Questions with known answers about a world :class:`~.timeline.Timeline`, in the task families long-video benchmarks
test: ``attribute``, ``counting``, ``temporal``, ``needle`` (long videos) and ``summary``.

:func:`multiple_choice` writes 4-option questions (one correct option, three distractors drawn from the world's
vocabulary, shuffled by ``seed``); :func:`open_questions` writes free-form question-answer pairs of the same facts.
Both read only the timeline, so the benchmark (from the ground truth) and the world captioner (from the timeline it
recovers from a description) ask the same questions. :func:`prompt` renders a multiple-choice question as the
evaluation harness shows it to the model (``world`` benchmark).

Example:
    >>> from dataset_builder.world.questions import multiple_choice, prompt
    >>> from dataset_builder.world.timeline import Appearance, Scene, Timeline
    >>> timeline = Timeline(0, 40.0, (Scene(0.0, 20.0, "navy"), Scene(20.0, 40.0, "olive")),
    ...                     (Appearance(5.0, 15.0, "circle", "red", True),))
    >>> question = next(q for q in multiple_choice(timeline, seed=0) if q.family == "counting")
    >>> question.question, question.options[ord(question.answer) - ord("A")]
    ('How many scenes does the video have?', '2')
    >>> print(prompt(question.question, question.options))  # doctest: +ELLIPSIS
    How many scenes does the video have?
    A. ...
    Answer with the best option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .timeline import BACKGROUNDS, FLASH_COLOURS, OBJECT_COLOURS, SHAPES, Appearance, Timeline

FAMILIES = ("attribute", "counting", "temporal", "needle", "summary")
LETTERS = "ABCD"
# The model is taught to answer with the chosen option's text; the harness maps a reply that repeats exactly one
# option's text to its letter (evaluation.answers.extract_choice, rule 5). Taught the label first ("C. navy", stages
# 1-3 at the shipped epochs, seed 0) it scored 19.5% generated, chance: the letter was its prior, mostly "C", and the
# text after it its own belief, not the text of that option.
POST_PROMPT = "Answer with the best option."
ALL_OBJECTS = tuple(f"{colour} {shape}" for shape in SHAPES for colour in OBJECT_COLOURS)
NUMBER_WORDS = ("1", "2", "3", "4", "5", "6", "7")


@dataclass(frozen=True)
class MultipleChoice:
    """One 4-option question: ``options`` are the option texts (no letters), ``answer`` the correct letter."""

    family: str
    question: str
    options: tuple[str, ...]
    answer: str

    @property
    def answer_text(self) -> str:
        return self.options[LETTERS.index(self.answer)]


def prompt(question: str, options: tuple[str, ...] | list[str]) -> str:
    """The question, its lettered options and the harness's post-prompt, one per line."""
    lines = [question, *(f"{letter}. {option}" for letter, option in zip(LETTERS, options)), POST_PROMPT]
    return "\n".join(lines)


def mc_answer(question: MultipleChoice) -> str:
    """The training answer of a multiple-choice question: the correct option's text."""
    return question.answer_text


def _choice(rng: np.random.Generator, family: str, question: str, answer: str, pool: list[str]) -> MultipleChoice:
    distractors = [option for option in dict.fromkeys(pool) if option != answer]
    picked = [distractors[i] for i in rng.choice(len(distractors), size=3, replace=False)]
    options = [answer, *picked]
    order = rng.permutation(4)
    options = [options[i] for i in order]
    return MultipleChoice(family, question, tuple(options), LETTERS[options.index(answer)])


def _sequence(names: list[str]) -> str:
    return ", then ".join(names)


def _summary_distractors(rng: np.random.Generator, backgrounds: list[str]) -> list[str]:
    """Background sequences unlike ``backgrounds``: reversed, one scene recoloured, one dropped or added."""
    names = list(BACKGROUNDS)
    candidates = set()
    for _ in range(40):
        sequence = list(backgrounds)
        change = int(rng.integers(3))
        if change == 0 and len(sequence) > 1:
            sequence = sequence[::-1]
        elif change == 1 or len(sequence) == 1:
            index = int(rng.integers(len(sequence)))
            sequence[index] = names[int(rng.integers(len(names)))]
        else:
            sequence.pop(int(rng.integers(len(sequence))))
        if all(a != b for a, b in zip(sequence, sequence[1:])) and sequence != backgrounds and sequence:
            candidates.add(_sequence(sequence))
        if len(candidates) >= 3:
            break
    while len(candidates) < 3:
        candidates.add(_sequence([names[int(i)] for i in rng.choice(len(names), size=len(backgrounds) + 1)]))
    return sorted(candidates)


def multiple_choice(timeline: Timeline, seed: int = 0) -> list[MultipleChoice]:
    """Every question the timeline supports, one or more per family (``needle`` only with a flash)."""
    rng = np.random.default_rng([seed, timeline.seed, int(timeline.duration)])
    scenes, appearances = timeline.scenes, timeline.appearances
    backgrounds = [scene.background for scene in scenes]
    questions: list[MultipleChoice] = []
    colours, shapes = list(OBJECT_COLOURS), list(SHAPES)

    # attribute
    questions.append(
        _choice(rng, "attribute", "What colour is the background at the start of the video?", backgrounds[0],
                list(BACKGROUNDS))
    )  # fmt: skip
    questions.append(
        _choice(rng, "attribute", "What colour is the background at the end of the video?", backgrounds[-1],
                list(BACKGROUNDS))
    )  # fmt: skip
    for appearance in appearances:
        questions.append(
            _choice(rng, "attribute", f"What colour is the background when the {appearance.name} appears?",
                    timeline.scene_of(appearance).background, list(BACKGROUNDS))
        )  # fmt: skip
    for shape in shapes:
        matching = [a for a in appearances if a.shape == shape]
        if len(matching) == 1:
            questions.append(
                _choice(rng, "attribute", f"What colour is the {shape} in the video?", matching[0].colour, colours)
            )
    for appearance in appearances:
        others = [a for a in appearances if a.colour == appearance.colour]
        if len(others) == 1:
            pool = [f"{appearance.colour} {shape}" for shape in shapes] + [
                f"{colour} {appearance.shape}" for colour in colours
            ]
            questions.append(_choice(rng, "attribute", f"Which object is {appearance.colour}?", appearance.name, pool))

    # counting
    numbers = list(NUMBER_WORDS)
    questions.append(_choice(rng, "counting", "How many scenes does the video have?", str(len(scenes)), numbers))
    questions.append(_choice(rng, "counting", "How many objects appear in the video?", str(len(appearances)), numbers))

    # temporal
    names = [a.name for a in appearances]
    if names:  # a part of a video (the captioner's segments) may show no object
        questions.append(_choice(rng, "temporal", "Which object appears first?", names[0], list(ALL_OBJECTS)))
        questions.append(_choice(rng, "temporal", "Which object appears last?", names[-1], list(ALL_OBJECTS)))
    for before, after in zip(names, names[1:]):
        questions.append(
            _choice(rng, "temporal", f"Which object appears right after the {before}?", after, list(ALL_OBJECTS))
        )
    for first, second in zip(backgrounds, backgrounds[1:]):
        if backgrounds.count(first) > 1:  # "right after navy" must name one moment
            continue
        questions.append(
            _choice(rng, "temporal", f"Which background colour comes right after {first}?", second,
                    list(BACKGROUNDS))
        )  # fmt: skip

    # needle
    for flash in timeline.flashes:
        questions.append(
            _choice(rng, "needle", "The screen briefly flashes a single colour. Which colour?", flash.colour,
                    list(FLASH_COLOURS))
        )  # fmt: skip

    # summary
    questions.append(
        _choice(rng, "summary", "Which sequence of background colours does the video show?", _sequence(backgrounds),
                _summary_distractors(rng, backgrounds))
    )  # fmt: skip
    return questions


def describe_appearance(appearance: Appearance) -> str:
    direction = "from left to right" if appearance.left_to_right else "from right to left"
    return f"a {appearance.name} moves {direction}"


def summary(timeline: Timeline) -> str:
    """A short chronological summary of the whole video (the answer to an open summary question)."""
    parts = []
    for scene in timeline.scenes:
        inside = [a for a in timeline.appearances if timeline.scene_of(a) == scene]
        events = "; ".join(describe_appearance(a) for a in inside) or "nothing moves"
        parts.append(f"A {scene.background} scene: {events}.")
    for flash in timeline.flashes:
        parts.append(f"Once the screen briefly flashes {flash.colour}.")
    return " ".join(parts)


class OpenQuestion(NamedTuple):
    """A free-form question: its dataset task type, the fact family it asks about (one of :data:`FAMILIES`, or
    ``"creative"``), the question and its answer."""

    task_type: str
    family: str
    question: str
    answer: str


def open_questions(timeline: Timeline) -> list[OpenQuestion]:
    """Free-form questions; task types are the dataset's (``summarization``, ``general_qa``, ``temporal``,
    ``creative_writing``)."""
    pairs = [
        OpenQuestion("summarization", "summary", "Summarize what happens in this video.", summary(timeline)),
        OpenQuestion("general_qa", "counting", "How many scenes does the video have?", f"{len(timeline.scenes)}."),
        OpenQuestion(
            "general_qa", "counting", "How many objects appear in the video?", f"{len(timeline.appearances)}."
        ),
    ]
    names = [a.name for a in timeline.appearances]
    pairs.append(OpenQuestion("temporal", "temporal", "In which order do the objects appear?",
                              f"{_sequence(names).capitalize()}."))  # fmt: skip
    for appearance in timeline.appearances:
        background = timeline.scene_of(appearance).background
        pairs.append(OpenQuestion("general_qa", "attribute",
                                  f"What colour is the background when the {appearance.name} appears?",
                                  f"{background}."))  # fmt: skip
    for flash in timeline.flashes:
        pairs.append(OpenQuestion("general_qa", "needle", "Does the screen ever flash? In which colour?",
                                  f"Yes, {flash.colour}."))  # fmt: skip
    title = f"The {names[0]} in the {timeline.scenes[0].background} world" if names else "A quiet world"
    pairs.append(OpenQuestion("creative_writing", "creative", "Suggest a title for this video.", title))
    return pairs
