"""What the API costs: OpenAI's image-token rule, the price table, and per-stage token and cost accounting
(actual, or estimated for ``--dry-run``).

    >>> image_tokens(512, 512, detail="low"), image_tokens(1280, 720)
    (85, 1105)
    >>> tracker = UsageTracker("gpt-4o")
    >>> tracker.stages["qa"].prompt_tokens = 1_000_000
    >>> tracker.cost(tracker.stages["qa"])
    2.5
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

PRICES = {"gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60)}
BATCH_DISCOUNT = 0.5
EXPECTED_OUTPUT_TOKENS = {"text": 350, "qa": 200}  # per caption / per requested task type, for --dry-run


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """OpenAI's image token rule: 85 for low detail; else 85 + 170 per 512-px tile after fitting 2048 / 768-short."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return 85 + 170 * math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


@dataclass
class StageUsage:
    """Counts of one stage: answers bought, served from the cache, failed for good, frames sent, tokens."""

    requests: int = 0
    cached: int = 0
    failed: int = 0
    frames: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class UsageTracker:
    """Token usage and cost per stage; ``estimated=True`` for --dry-run plans."""

    model: str
    price: tuple[float, float] | None = None
    discount: float = 1.0
    estimated: bool = False
    stages: dict[str, StageUsage] = field(default_factory=lambda: defaultdict(StageUsage))

    def cost(self, usage: StageUsage) -> float | None:
        price = self.price or PRICES.get(self.model)
        if price is None:
            return None
        return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6 * self.discount

    def summary(self) -> str:
        """A printable per-stage table with a total row."""
        head = "estimated (dry run)" if self.estimated else "actual"
        lines = [
            f"API usage, {head}, model {self.model}:",
            f"{'stage':<18}{'calls':>7}{'cached':>8}{'failed':>8}{'frames':>8}{'prompt tok':>12}{'output tok':>12}"
            f"{'cost USD':>10}",
        ]
        total = StageUsage()
        for name, usage in sorted(self.stages.items()) + [("total", total)]:
            if name != "total":
                for attr in vars(total):
                    setattr(total, attr, getattr(total, attr) + getattr(usage, attr))
            cost = self.cost(usage)
            cost_text = "n/a" if cost is None else f"{cost:.4f}"
            lines.append(
                f"{name:<18}{usage.requests:>7}{usage.cached:>8}{usage.failed:>8}{usage.frames:>8}"
                f"{usage.prompt_tokens:>12}{usage.completion_tokens:>12}{cost_text:>10}"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {name: {**vars(usage), "cost_usd": self.cost(usage)} for name, usage in self.stages.items()}
