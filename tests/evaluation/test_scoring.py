"""Likelihood scoring (`--scoring likelihood`): each option's score is the log-probability of its text and the end of
the turn as the reply, computed here by hand with one full forward pass per option (no cache); the runner picks the
best option, never fails to parse, and keeps its answers apart from generated ones."""

import json

import numpy as np
import torch

from evaluation.fixtures import write_fixture
from evaluation.runner import EvaluationConfig, run_evaluation
from evaluation.scoring import option_logprobs


def _reference_logprob(model, processor, prompt: str, frames, option: str) -> float:
    """log p(option <|im_end|> | prompt): the whole conversation in one pass, the reply's tokens summed."""
    prompt_ids = processor(text=[prompt], videos=[frames], return_tensors="pt")["input_ids"]
    batch = processor(text=[prompt + option + "<|im_end|>"], videos=[frames], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0].float()
    ids = batch["input_ids"][0]
    start = prompt_ids.shape[1]
    assert torch.equal(ids[:start], prompt_ids[0])  # the reply's tokens follow the prompt's unchanged
    logprobs = torch.log_softmax(logits[start - 1 : -1], dim=-1)
    return float(logprobs.gather(1, ids[start:, None]).sum())


def test_option_logprobs_equal_a_full_forward_pass_per_option(tiny_checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from evaluation.generation import chat_prompt, prepare_inputs

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint).eval()
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    text = "Which colour?\nA. navy\nB. teal, then olive\nC. teal\nAnswer with the best option."
    options = ["navy", "teal, then olive", "teal"]
    scores = option_logprobs(model, processor, prepare_inputs(processor, frames, text, model.dtype), options)
    prompt = chat_prompt(processor, text)
    expected = [_reference_logprob(model, processor, prompt, frames, option) for option in options]
    assert np.allclose(scores, expected, atol=1e-4), (scores, expected)
    assert len(set(np.round(scores, 3))) == 3  # a prefix option ("teal") is not scored as the longer one


def test_the_runner_chooses_the_most_likely_option(tiny_checkpoint, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from evaluation.benchmarks import get_benchmark
    from evaluation.generation import chat_prompt
    from processing import load_video

    data = write_fixture("videomme", tmp_path / "data", num_videos=2, questions_per_video=2)
    out = tmp_path / "out"
    fields = dict(model=str(tiny_checkpoint), benchmark="videomme", data=str(data), out=str(out), frames=[4],
                  dtype="float32", num_workers=0, device="cpu", max_new_tokens=4)  # fmt: skip
    (result,) = run_evaluation(EvaluationConfig(**fields, scoring="likelihood"))
    assert "-likelihood-" in result.name
    summary = json.loads(result.read_text())
    assert summary["protocol"]["scoring"] == "likelihood" and summary["metrics"]["parse_failures"] == 0
    lines = [json.loads(line) for line in (out / "predictions-0.jsonl").read_text().splitlines()]
    assert len(lines) == 4

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint).eval()
    benchmark = get_benchmark("videomme")
    question = next(q for q in benchmark.read(data) if q.question_id == lines[0]["question_id"])
    frames, _ = load_video(question.video_path, num_frames=4)
    prompt = chat_prompt(processor, benchmark.prompt(question, None))
    scores = [_reference_logprob(model, processor, prompt, frames, option) for option in question.option_texts]
    best = int(np.argmax(scores))
    assert lines[0]["choice"] == question.letters[best] and lines[0]["reply"] == question.option_texts[best]

    # generated answers are kept apart: a generate run answers every question anew, into its own result file
    (generated,) = run_evaluation(EvaluationConfig(**fields))
    assert "-likelihood-" not in generated.name and generated != result
    assert len((out / "predictions-0.jsonl").read_text().splitlines()) == 8
