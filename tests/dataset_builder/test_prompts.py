"""QA prompts carry a definition and example instructions for every task type they ask for (paper section 3.4)."""

import re

import pytest

from dataset_builder.plan import PlanSettings, qa_requests
from dataset_builder.prompts import load_prompt
from dataset_builder.records import LocalRecord
from dataset_builder.schemas import STRATEGY_TASK_TYPES
from dataset_builder.segmentation import fixed_segments


def rendered(strategy: str) -> str:
    duration = 30.0 if strategy == "short_global" else 90.0
    times = tuple(float(t) for t in range(int(duration)))
    segmentation = "none" if strategy == "short_global" else "fixed"
    segments = tuple(fixed_segments(times, duration, seconds=duration if segmentation == "none" else 30.0))
    local = LocalRecord("k", "PMV/a", "f00d", duration, 30.0, 64, 64, (64, 64), times, segmentation, segments, {})
    plans = qa_requests(local, "A dog runs.", ["A dog.", "A cat.", "A bird."][: len(segments)], PlanSettings())
    (request,) = [request for name, _, request in plans if name == strategy]
    return request.text


@pytest.mark.parametrize("strategy", sorted(STRATEGY_TASK_TYPES))
def test_every_asked_task_type_has_a_definition_and_example_instructions(strategy):
    text = rendered(strategy)
    for task_type in STRATEGY_TASK_TYPES[strategy]:
        # "- task_type: definition" (continued on indented lines), then an indented "Examples:" line.
        match = re.search(rf"^- {task_type}: (.+(?:\n +(?!Examples:).+)*)\n +Examples: (.+)$", text, re.MULTILINE)
        assert match, f"{strategy}: no definition + examples for {task_type}"
        examples = re.findall(r'"([^"]+[?.!])"', match.group(2))
        assert len(examples) >= 2 and all(len(example.split()) >= 4 for example in examples), match.group(2)


def test_qa_prompt_versions_were_bumped_with_the_examples():
    for name in ("qa_global", "qa_multi_segment", "qa_single_segment"):
        assert load_prompt(name).version == "1.1"
