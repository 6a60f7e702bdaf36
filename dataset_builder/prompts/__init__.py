"""Versioned prompt files. Each ``*.yaml`` holds ``id``, ``version``, ``response`` (text | json), ``system``, ``user``.

The ``user`` field is a ``str.format`` template. The version is part of every API cache key and is stored in every row
the prompt produced, so editing a prompt means bumping its version.

Example:
    >>> from dataset_builder.prompts import load_prompt
    >>> prompt = load_prompt("segment_caption")
    >>> prompt.version, prompt.render(num_frames=8, start=0, end=12)[:24]
    ('1.0', 'The images are 8 frames ')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROMPT_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Prompt:
    id: str
    version: str
    response: str
    system: str
    user: str

    @property
    def tag(self) -> str:
        """``id@version``, the form stored in rows."""
        return f"{self.id}@{self.version}"

    def render(self, **fields: object) -> str:
        try:
            return self.user.format(**fields)
        except KeyError as error:
            raise ValueError(f"Prompt {self.tag} needs the field {error}; pass it to render().") from None


@cache
def load_prompt(name: str) -> Prompt:
    """Load ``dataset_builder/prompts/<name>.yaml`` and check its fields."""
    path = PROMPT_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in PROMPT_DIR.glob("*.yaml"))
        raise ValueError(f"No prompt file {path}; available prompts: {available}.")
    data = yaml.safe_load(path.read_text())
    missing = {"id", "version", "response", "system", "user"} - set(data)
    if missing:
        raise ValueError(f"Prompt file {path} lacks the field(s) {sorted(missing)}.")
    if data["response"] not in ("text", "json"):
        raise ValueError(f"Prompt file {path}: response must be 'text' or 'json', got {data['response']!r}.")
    return Prompt(**{key: str(data[key]) for key in ("id", "version", "response", "system", "user")})
