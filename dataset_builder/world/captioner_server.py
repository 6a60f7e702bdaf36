"""The "world captioner": an OpenAI-compatible server on 127.0.0.1 that answers the kit's real annotation prompts about
world videos as GPT-4o would, exactly, by reading pixels and descriptions (the HTTP layer is
:class:`~dataset_builder.fake_openai_server.FakeOpenAIServer`; this module supplies its answers, :func:`answer`).

Which prompt a request renders is found by matching its text against the prompt files themselves
(``dataset_builder/prompts/*.yaml``, :func:`identify_prompt`), so a reworded prompt keeps working as long as its fields
stay.

* ``segment_caption`` / ``short_caption``: the base64 JPEG frames are perceived (:func:`~.perception.perceive`) and
  placed in time -- they are the segment's 1-fps frames, evenly thinned (``plan.pick_times``) -- and described
  (:func:`~.language.describe_segment`).
* ``video_caption``: the ``[Xs - Ys] caption`` blocks are parsed, merged (:func:`~.language.merge_timelines`) and the
  whole video described.
* ``qa_global`` / ``qa_single_segment`` / ``qa_multi_segment``: the descriptions are parsed into a timeline and the
  prompt's task types get exactly the number of pairs it asks for, the question families in turn, drawn from
  :func:`~.questions.multiple_choice` (question = the rendered multiple-choice prompt) and
  :func:`~.questions.open_questions`: ``summarization`` <- the summary family, ``general_qa`` <- attribute, counting
  and needle (single segment: only those about what the part shows, plus the background at a moment of it),
  ``temporal`` <- temporal (a window of segments that is not the whole video: only "right after" questions, plus how
  long its objects stay and when its background changes), ``creative_writing`` <- the title. Random choices are seeded
  by the request text: answers are deterministic.

Example:
    >>> import openai
    >>> from dataset_builder.prompts import load_prompt
    >>> from dataset_builder.world.captioner_server import world_captioner_server
    >>> segments = "[0s - 12s] From 0s to 12s the background is teal.\\n\\n[12s - 20s] From 12s to 20s the background is teal."
    >>> text = load_prompt("video_caption").render(duration=20, segment_captions=segments)
    >>> with world_captioner_server() as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY")
    ...     reply = client.chat.completions.create(model="world", messages=[{"role": "user", "content": text}])
    >>> reply.choices[0].message.content
    'From 0s to 20s the background is teal.'

Run standalone (a chain script reads the port): ``python -m dataset_builder.world.captioner_server [--port 0]`` prints
``PORT <n>`` and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import random
import re
import string
import sys
from functools import cache

import numpy as np
from PIL import Image

from ..fake_openai_server import FakeOpenAIServer
from ..plan import pick_times
from ..prompts import PROMPT_DIR, load_prompt
from . import questions
from .language import describe_segment, describe_video, merge_timelines, parse_description
from .perception import perceive
from .timeline import Timeline

# MC families and open task types behind each of the dataset's task types.
FAMILIES = {
    "summarization": ("summary",),
    "general_qa": ("attribute", "counting", "needle"),
    "temporal": ("temporal",),
    "creative_writing": (),
}
_BLOCK = re.compile(r"\[(\d+(?:\.\d+)?)s - (\d+(?:\.\d+)?)s\] (.*?)(?=\n\n\[|\Z)", re.DOTALL)


@cache
def _prompt_patterns() -> dict[str, re.Pattern]:
    """``{prompt name: regex of its rendered user text}``: literal text escaped, numeric fields as numbers."""
    patterns = {}
    for path in sorted(PROMPT_DIR.glob("*.yaml")):
        parts = []
        for literal, field, spec, _ in string.Formatter().parse(load_prompt(path.stem).user):
            parts.append(re.escape(literal))
            if field is not None:
                value = r"-?\d+(?:\.\d+)?" if spec else ".+?"
                group = f"(?P={field})" if f"(?P<{field}>" in "".join(parts) else f"(?P<{field}>{value})"
                parts.append(group)
        patterns[path.stem] = re.compile("".join(parts), re.DOTALL)
    return patterns


def identify_prompt(text: str) -> tuple[str, dict[str, str]]:
    """``(prompt name, rendered fields)`` of a request's user text.

    Raises:
        ValueError: the text renders none of the kit's prompts.
    """
    for name, pattern in _prompt_patterns().items():
        if match := pattern.fullmatch(text):
            return name, match.groupdict()
    raise ValueError(f"The world captioner answers only the kit's prompts ({sorted(_prompt_patterns())}); got "
                     f"{text[:100]!r}.")  # fmt: skip


def _user_parts(body: dict) -> tuple[str, list[np.ndarray]]:
    """The last user message's text and its images as ``(H, W, 3)`` uint8 arrays."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content, []
    text = "".join(part["text"] for part in content if part.get("type") == "text")
    frames = []
    for part in content:
        if part.get("type") == "image_url":
            data = base64.b64decode(part["image_url"]["url"].partition("base64,")[2])
            frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return text, frames


def frame_times(start: float, end: float, count: int) -> list[float]:
    """The times of ``count`` frames the pipeline sends for ``[start, end)``: its 1-fps frames, evenly thinned."""
    seconds = [float(t) for t in range(math.ceil(start), max(math.ceil(start) + 1, math.ceil(end - 1e-9)))]
    if count > len(seconds):
        raise ValueError(f"{count} frames for {start:.0f}s-{end:.0f}s, which holds {len(seconds)} 1-fps frames.")
    return pick_times(seconds, 0, len(seconds) - 1, count)


def _describe_frames(frames: list[np.ndarray], start: float, end: float) -> str:
    if not frames:
        raise ValueError(f"A caption request for {start:.0f}s-{end:.0f}s came without frames.")
    return describe_segment(frame_times(start, end, len(frames)), [perceive(f) for f in frames], start, end)


def _blocks(text: str) -> list[tuple[float, float, str]]:
    return [(float(a), float(b), caption.strip()) for a, b, caption in _BLOCK.findall(text)]


def _merged(text: str) -> Timeline:
    blocks = _blocks(text)
    if not blocks:
        raise ValueError(f"No '[Xs - Ys] caption' block in {text[:100]!r}.")
    return merge_timelines([parse_description(caption) for _, _, caption in blocks])


def _pool(timeline: Timeline, task_type: str, seed: int) -> list[tuple[str, str, str]]:
    """Every ``(family, question, answer)`` of ``task_type`` the timeline supports, MC questions shuffled by
    ``seed``."""
    pairs = [
        (q.family, questions.prompt(q.question, q.options), questions.mc_answer(q))
        for q in questions.multiple_choice(timeline, seed=seed)
        if q.family in FAMILIES[task_type]
    ]
    pairs += [(q.family, q.question, q.answer) for q in questions.open_questions(timeline) if q.task_type == task_type]
    if task_type == "creative_writing":
        pairs += [("creative", question, answer) for question, answer in _creative(timeline)]
    return pairs


def _creative(timeline: Timeline) -> list[tuple[str, str]]:
    """Creative tasks beyond the title, grounded in the timeline: a short poem, a one-line advertisement."""
    backgrounds = [scene.background for scene in timeline.scenes]
    objects = [appearance.name for appearance in timeline.appearances]
    passing = f"and across it pass the {', the '.join(objects)}." if objects else "and nothing crosses it."
    poem = "\n".join(
        [f"First the world is {backgrounds[0]},", *(f"then it turns {c}," for c in backgrounds[1:]), passing]
    )
    star = f"the {objects[0]} cross a {backgrounds[0]} world" if objects else f"a calm {backgrounds[0]} world"
    advert = f"Watch {star}" + (f", and stay for the {backgrounds[-1]} finale!" if len(backgrounds) > 1 else "!")
    return [
        ("Write a short poem inspired by this video.", poem),
        ("Write a one-line advertisement for this video.", advert),
    ]


def _segment_pool(timeline: Timeline, part: Timeline, seed: int) -> list[tuple[str, str, str]]:
    """general_qa about what ``part`` (one segment) shows, asked with the whole video's facts (``timeline``)."""
    words = {a.name for a in part.appearances} | {a.colour for a in part.appearances}
    words |= {a.shape for a in part.appearances} | ({"flash"} if part.flashes else set())
    local = [item for item in _pool(timeline, "general_qa", seed) if any(w in item[1].split("\n")[0] for w in words)]
    for scene in part.scenes:
        moment = round((scene.start + scene.end) / 2)
        local.append(("attribute", f"What colour is the background {moment} seconds into the video?",
                      f"{scene.background}."))  # fmt: skip
    return local


def _window_pool(window: Timeline, whole_video: bool, seed: int) -> list[tuple[str, str, str]]:
    """temporal QA over consecutive segments: all of the family when they are the whole video, else what a window
    can tell (what comes right after what), plus how long its objects stay and when its background changes."""
    pairs = _pool(window, "temporal", seed)
    if not whole_video:
        pairs = [item for item in pairs if "right after" in item[1].split("\n")[0]]
    for appearance in window.appearances:
        pairs.append(("temporal", f"How long does the {appearance.name} stay on screen?",
                      f"About {round(appearance.end - appearance.start)} seconds, from {round(appearance.start)}s "
                      f"to {round(appearance.end)}s."))  # fmt: skip
    for before, after in zip(window.scenes, window.scenes[1:]):
        pairs.append(("temporal", f"When does the background change from {before.background} to {after.background}?",
                      f"At {round(after.start)}s."))  # fmt: skip
    return pairs


def _pick(pool_for_seed, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` ``(question, answer)`` pairs from ``(family, question, answer)`` pools: the families in turn (a
    request for 3 general_qa pairs of a long video asks one attribute, one counting and one needle question, however
    many attribute questions the video supports), every question stem once (in random order within its family) before
    any stem again with its options reshuffled (successive MC seeds), and repeats only when the pools hold fewer pairs
    than that."""
    variants: dict[str, dict[str, str]] = {}  # stem -> {question: answer}
    families: dict[str, list[str]] = {}  # family -> its stems
    for seed in range(8):
        for family, question, answer in pool_for_seed(seed):
            stem = question.split("\n")[0]
            if stem not in variants:
                families.setdefault(family, []).append(stem)
            variants.setdefault(stem, {}).setdefault(question, answer)
        if sum(len(v) for v in variants.values()) >= count:
            break
    if not variants:
        raise ValueError("The description supports no question of the task type asked for.")
    groups = [sorted(stems) for _, stems in sorted(families.items())]
    for group in groups:
        rng.shuffle(group)
    rng.shuffle(groups)
    stems = [group[k] for k in range(max(map(len, groups))) for group in groups if k < len(group)]
    rounds = max(len(v) for v in variants.values())
    pairs = [list(variants[stem].items())[k] for k in range(rounds) for stem in stems if k < len(variants[stem])]
    return [pairs[i % len(pairs)] for i in range(count)]


def _qa(name: str, fields: dict[str, str], text: str) -> str:
    rng = random.Random(int(hashlib.sha256(text.encode()).hexdigest(), 16))
    count = int(fields["questions_per_type"])
    base = rng.randrange(1 << 30)
    if name == "qa_global":
        timeline = parse_description(fields["video_caption"])
        task_types = [t.strip() for t in fields["task_types"].split(",")]
        plans = {t: (lambda seed, t=t: _pool(timeline, t, base + seed)) for t in task_types}
    elif name == "qa_single_segment":
        timeline, part = parse_description(fields["video_caption"]), parse_description(fields["segment_caption"])
        plans = {"general_qa": lambda seed: _segment_pool(timeline, part, base + seed)}
    else:
        window = _merged(fields["segment_captions"])
        blocks = _blocks(fields["segment_captions"])
        whole = blocks[0][0] == 0 and round(blocks[-1][1]) >= round(float(fields["duration"]))
        plans = {"temporal": lambda seed: _window_pool(window, whole, base + seed)}
    qa = [
        {"task_type": task_type, "question": question, "answer": answer}
        for task_type, pool_for_seed in plans.items()
        for question, answer in _pick(pool_for_seed, count, rng)
    ]
    return json.dumps({"qa": qa})


def answer(body: dict) -> str:
    """The reply content to one chat-completions request body (see the module docstring)."""
    text, frames = _user_parts(body)
    name, fields = identify_prompt(text)
    if name == "segment_caption":
        return _describe_frames(frames, float(fields["start"]), float(fields["end"]))
    if name == "short_caption":
        return _describe_frames(frames, 0.0, float(fields["duration"]))
    if name == "video_caption":
        return describe_video(_merged(fields["segment_captions"]))
    return _qa(name, fields, text)


def world_captioner_server(port: int = 0) -> FakeOpenAIServer:
    """The world captioner on ``127.0.0.1:port`` (0: any free port); use as a context manager or ``.start()``."""
    return FakeOpenAIServer(content_fn=answer, port=port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default: 0)")
    args = parser.parse_args()
    server = world_captioner_server(args.port)
    server.start()
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
