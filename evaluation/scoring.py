"""Multiple-choice scoring by option likelihood (``python -m evaluation run --scoring likelihood``).

Instead of generating a reply and reading a letter out of it (upstream's protocol, the default), every option's text
is scored as the assistant's whole reply: the summed log-probability of its tokens and of the end of the turn
(``<|im_end|>``), given the same prompt and frames. The option with the highest score is the model's choice, so a
model that cannot follow the answer format is still measured on what it believes -- the ``multiple_choice`` output
type of lm-evaluation-harness. The end-of-turn token makes an option that is a prefix of another (``teal`` and
``teal, then olive``) compete fairly.

The prompt (video included) is encoded once; each option continues from a copy of its key-value cache.

Example:
    >>> from evaluation.generation import load_model_and_processor, prepare_inputs, read_frames
    >>> from evaluation.scoring import option_logprobs
    >>> model, processor = load_model_and_processor("modeling_prolongvid/world_model", "float32")  # doctest: +SKIP
    >>> frames, _ = read_frames("clip.mp4", frames=192)  # doctest: +SKIP
    >>> inputs = prepare_inputs(processor, frames, "Which colour?\\nA. navy\\nB. teal", model.dtype)  # doctest: +SKIP
    >>> option_logprobs(model, processor, inputs, ["navy", "teal"])  # doctest: +SKIP
    [-0.02, -4.1]
"""

from __future__ import annotations

import copy

import torch

END_OF_TURN = "<|im_end|>"


def option_token_ids(tokenizer, option: str) -> list[int]:
    """The tokens of ``option`` as a reply: its text, then the end of the turn."""
    ids = tokenizer(option, add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end is None or end == tokenizer.unk_token_id:
        raise ValueError(f"The tokenizer has no {END_OF_TURN} token: likelihood scoring needs the ChatML template.")
    return [*ids, end]


def option_logprobs(model, processor, inputs: dict[str, torch.Tensor], options: list[str]) -> list[float]:
    """``[log p(option_i + end of turn | prompt)]`` for a batch of one prepared prompt
    (:func:`evaluation.generation.prepare_inputs`); ``options`` are the option texts without their letters."""
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    with torch.inference_mode():
        prompt = model(**inputs, use_cache=True)
        first = torch.log_softmax(prompt.logits[0, -1].float(), dim=-1)
        scores = []
        for option in options:
            ids = option_token_ids(processor.tokenizer, option)
            score = first[ids[0]]
            if len(ids) > 1:
                rest = torch.tensor([ids[:-1]], device=model.device)
                mask = torch.cat([inputs["attention_mask"], torch.ones_like(rest)], dim=1)
                logits = model(
                    input_ids=rest,
                    attention_mask=mask,
                    cache=copy.deepcopy(prompt.past_key_values),
                    use_cache=True,
                ).logits[0]
                targets = torch.tensor(ids[1:], device=model.device)
                score = score + torch.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).sum()
            scores.append(float(score))
    return scores
