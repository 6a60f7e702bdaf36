"""VideoMME subtitles as lmms-eval gives them to the model: the lines shown at uniformly sampled frames.

lmms-eval (0.7.3 and the 0.2.1 copy in ruiwang2021/ProLongVid, ``tasks/videomme/utils.py``) turns each SRT cue into
a frame range ``[int(start * fps), int(end * fps))``, samples ``frame_num`` frame indices with
``np.linspace(0, total_frames - 1, frame_num, dtype=int)`` and keeps every cue whose range holds one of them, taking
the text inside ``<font color="white" size=".72c">...</font>`` (VideoMME's SRT files wrap every cue in it). The cues
are joined with newlines in time order. ``frame_num`` is a task setting, not the model's frame count: 768 in the
ProLongVid copy (32 in 0.7.3's default). Cues without that font tag are kept as plain text here (lmms-eval drops
them; VideoMME's files have none).

Example:
    >>> cues = parse_srt('1\\n00:00:01,000 --> 00:00:03,000\\n<font color="white" size=".72c">Hello</font>\\n')
    >>> cues[0].start, cues[0].end
    (1.0, 3.0)
    >>> subtitles_at_frames(cues, total_frames=100, fps=10.0, frame_num=8)
    'Hello'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_TIME = re.compile(r"(\d+):(\d+):(\d+)[,.](\d+)")
_VIDEOMME_FONT = re.compile(r'<font color="white" size=".72c">(.*?)</font>')
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class SubtitleCue:
    """One SRT cue: start and end in seconds, and its text (lines joined by a space)."""

    start: float
    end: float
    text: str


def parse_srt(content: str) -> list[SubtitleCue]:
    """Cues of an SRT file's content; blocks without a ``start --> end`` line are skipped."""
    cues = []
    for block in re.split(r"\n\s*\n", content.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        times = _TIME.findall(lines[timing])
        if len(times) != 2:
            continue
        start, end = (int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 10 ** len(ms) for h, m, s, ms in times)
        cues.append(SubtitleCue(start, end, " ".join(lines[timing + 1 :]).strip()))
    return cues


def subtitles_at_frames(cues: list[SubtitleCue], total_frames: int, fps: float, frame_num: int) -> str:
    """The text of the cues showing at ``frame_num`` uniformly sampled frames, one cue per line, in time order."""
    sampled = np.linspace(0, total_frames - 1, frame_num, dtype=int)
    lines = []
    for cue in sorted(cues, key=lambda cue: cue.start):
        first, last = int(cue.start * fps), int(cue.end * fps)
        if np.any((sampled >= first) & (sampled < last)):
            tagged = _VIDEOMME_FONT.search(cue.text)
            lines.append(tagged.group(1) if tagged else _TAG.sub("", cue.text).strip())
    return "\n".join(line for line in lines if line)


__all__ = ["SubtitleCue", "parse_srt", "subtitles_at_frames"]
