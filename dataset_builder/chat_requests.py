"""One chat request and its reply: the request (prompt text plus frames as base64 JPEG parts, keyed by a content hash),
what its answer must be (``ResponseSpec``), and reading a completion body into its answer or a clear failure.

    >>> completion_answer({"choices": [{"message": {"content": "A red ball."}}], "usage": {}, "id": "r1"})
    ('A red ball.', {}, 'r1')
    >>> completion_answer({"choices": []})
    Traceback (most recent call last):
    ...
    dataset_builder.chat_requests.MalformedResponse: malformed reply: "choices" is [], not a non-empty list
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .prompts import Prompt
from .schemas import ResponseValidationError, parse_qa_response, qa_json_schema, validate_text_response
from .usage import EXPECTED_OUTPUT_TOKENS, image_tokens

logger = logging.getLogger(__name__)


# USD per 1M tokens (input, output), list prices of Nov 2025; --price-input/--price-output override them.
class RequestFailed(RuntimeError):
    """A request that failed for good (its reason is already in the errors file); ``kind`` names the last failure."""

    def __init__(self, message: str, kind: str = "request_failed") -> None:
        super().__init__(message)
        self.kind = kind


class MalformedResponse(ResponseValidationError):
    """An HTTP 200 whose body is not a usable chat completion."""


class OversizedAnswer(ResponseValidationError):
    """An answer longer than its stage allows (``max_tokens x MAX_CHARS_PER_TOKEN`` characters)."""


def completion_answer(body: Any) -> tuple[str, dict[str, Any], str]:
    """``(content, usage, response id)`` of a chat-completion body (its text or parsed JSON).

    Raises:
        MalformedResponse: the body is not JSON, not an object, or has no ``choices[0].message.content`` string.
    """
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as error:
            raise MalformedResponse(f"malformed reply: the body is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise MalformedResponse(f"malformed reply: the body is a JSON {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse(f'malformed reply: "choices" is {choices!r}, not a non-empty list')
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise MalformedResponse('malformed reply: choices[0] has no "message" object')
    content = message.get("content")
    if not isinstance(content, str):
        refusal = message.get("refusal")
        why = f"refusal: {refusal}" if refusal else f"finish_reason {choice.get('finish_reason')!r}"
        raise MalformedResponse(f'malformed reply: the message has no "content" string ({why})')
    usage = body.get("usage")
    return content, usage if isinstance(usage, dict) else {}, str(body.get("id") or "")


INVALID_KINDS = {MalformedResponse: "malformed_response", OversizedAnswer: "oversized_answer"}


def _tokens(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) else 0


class BatchPending(RuntimeError):
    """Batch mode: the answer is not cached yet; the request was queued for the next batch."""


@dataclass(frozen=True)
class ResponseSpec:
    """What a valid answer looks like: ``kind="text"`` (a caption) or ``kind="qa"`` (JSON with ``task_types``)."""

    kind: str
    task_types: tuple[str, ...] = ()

    def parse(self, content: str | None) -> Any:
        return self.parse_with_problems(content)[0]

    def parse_with_problems(self, content: str | None) -> tuple[Any, list[str]]:
        """``(answer, problems)``: a QA answer keeps its valid items and lists the dropped ones. Raises when invalid."""
        if self.kind == "qa":
            return parse_qa_response(content or "", self.task_types)
        return validate_text_response(content), []

    def response_format(self, structured: bool) -> dict[str, Any] | None:
        """``response_format`` of the request: a strict JSON schema (``structured``) or JSON mode for QA, else none."""
        if self.kind != "qa":
            return None
        return qa_json_schema(self.task_types) if structured else {"type": "json_object"}

    def placeholder(self) -> Any:
        """A stand-in answer for --dry-run so later stages can be planned."""
        if self.kind == "qa":
            return [{"task_type": t, "question": "(dry run)", "answer": "(dry run)"} for t in self.task_types]
        return "(dry run) " * 60


@dataclass
class ChatRequest:
    """One chat completion: a prompt rendered to ``text`` plus frames sent as base64 JPEG ``image_url`` parts.

    ``image_ids`` are stable identities of the frames (video fingerprint + timestamp + size) and enter the cache key,
    so a cached answer is found without decoding the video; ``images`` produces the JPEG bytes only on a cache miss.
    """

    stage: str
    video_id: str
    prompt: Prompt
    text: str
    spec: ResponseSpec
    image_ids: tuple[str, ...] = ()
    images: Callable[[], list[bytes]] | None = None
    image_size: tuple[int, int] = (512, 512)

    def key(self, params: dict[str, Any]) -> str:
        material = {"prompt": self.prompt.tag, "params": params, "text": self.text, "images": list(self.image_ids)}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def body(self, params: dict[str, Any], jpegs: list[bytes], structured: bool = True) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions``; ``structured`` picks Structured Outputs over JSON mode."""
        detail = params["image_detail"]
        content: list[dict[str, Any]] = [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), "detail": detail},
            }
            for jpeg in jpegs
        ]
        content.append({"type": "text", "text": self.text})
        body = {
            "model": params["model"],
            "messages": [{"role": "system", "content": self.prompt.system}, {"role": "user", "content": content}],
            "temperature": params["temperature"],
            "max_tokens": params["max_tokens"],
        }
        response_format = self.spec.response_format(structured)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def estimated_tokens(self, detail: str) -> tuple[int, int]:
        """(prompt, completion) token estimate: ~4 characters per token; images by OpenAI's tile rule."""
        prompt = (len(self.text) + len(self.prompt.system)) // 4 + len(self.image_ids) * image_tokens(
            *self.image_size, detail
        )
        out = (
            EXPECTED_OUTPUT_TOKENS["text"]
            if self.spec.kind == "text"
            else EXPECTED_OUTPUT_TOKENS["qa"] * len(self.spec.task_types)
        )
        return prompt, out


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds); ``None`` when absent or unparsable."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None
