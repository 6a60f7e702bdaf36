"""What the Space's chat hands over, read for the model: :func:`parse_conversation` finds the question, the media
(the newest upload, so a video stays attached over later questions) and the earlier turns about it.

Example:
    >>> history = [{"role": "user", "content": {"path": "/tmp/a.mp4"}}, {"role": "user", "content": "What moves?"},
    ...            {"role": "assistant", "content": "A red circle."}]
    >>> parse_conversation({"text": "And then?", "files": []}, history)
    ('And then?', '/tmp/a.mp4', [('What moves?', 'A red circle.')])
"""

from __future__ import annotations

from collections.abc import Iterator

ERROR_PREFIX = "⚠ "  # starts an answer that is an error message, not the model's
# Starts the answer to a turn whose file could not be used, so later text-only questions do not reuse that file.
FILE_REJECTED = "File not used: "


def _content_items(content) -> Iterator[tuple[str, str]]:
    """Flatten one chat message's content into ("text", str) / ("file", path) items.

    Accepts both forms gradio hands over: the normalized one from the chatbot
    (`[{"type": "text", "text": ...}, {"type": "file", "file": {"path": ...}}]`) and the raw one kept in the
    API's state (`"text"`, `{"path": ...}`, `("path",)`).
    """
    if content is None:
        return
    if isinstance(content, str):
        yield "text", content
    elif isinstance(content, tuple):  # ("path", "alt text")
        yield "file", str(content[0])
    elif isinstance(content, list):
        for item in content:
            yield from _content_items(item)
    elif isinstance(content, dict):
        if content.get("type") == "text" or "text" in content:
            yield "text", content.get("text") or ""
        elif isinstance(content.get("file"), dict):
            yield "file", content["file"]["path"]
        elif content.get("path"):
            yield "file", content["path"]


def parse_conversation(message: dict | str, history: list[dict]) -> tuple[str, str | None, list[tuple[str, str]]]:
    """Return `(question, media_path, earlier_turns)` for the model.

    The media is the newest upload in the conversation, so a video stays attached over later questions;
    `earlier_turns` are the `(question, answer)` pairs asked since it was uploaded, minus turns that failed.
    """
    turns: list[dict] = []
    for entry in history:
        role = entry.get("role") if isinstance(entry, dict) else getattr(entry, "role", None)
        content = entry.get("content") if isinstance(entry, dict) else getattr(entry, "content", None)
        if role == "user" and (not turns or turns[-1]["answer"]):
            turns.append({"question": "", "files": [], "answer": ""})
        elif not turns:
            continue
        for kind, value in _content_items(content):
            if role == "user" and kind == "file":
                turns[-1]["files"].append(value)
            elif role == "user":
                turns[-1]["question"] = (turns[-1]["question"] + "\n" + value).strip()
            elif kind == "text":
                turns[-1]["answer"] += value

    if isinstance(message, dict):
        question = (message.get("text") or "").strip()
        files = [item if isinstance(item, str) else item["path"] for item in message.get("files") or []]
    else:
        question, files = (message or "").strip(), []
    if files:
        return question, files[-1], []
    for start in range(len(turns) - 1, -1, -1):
        if turns[start]["files"] and not turns[start]["answer"].startswith(ERROR_PREFIX + FILE_REJECTED):
            earlier = [
                (turn["question"], turn["answer"])
                for turn in turns[start:]
                if turn["question"] and turn["answer"] and not turn["answer"].startswith(ERROR_PREFIX)
            ]
            return question, turns[start]["files"][-1], earlier
    return question, None, []
