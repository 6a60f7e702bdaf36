"""The world model card's Table-4 paragraph (paper Table 4): progressive vs the mixed single-stage baseline over the
training seeds, as :func:`recipes.world.card.seed_comparison` measures it -- one row per training kind and scoring, and
progressive minus mixed read against the seeds' spread.

```python
>>> figures = {"seeds": [0, 1], "progressive": {"overall": [60.0, 70.0], "overall_mean": 65.0, "overall_std": 7.07,
...            "long": [40.0, 50.0], "long_mean": 45.0, "long_std": 7.07}, "mixed": {"overall": [50.0, 52.0],
...            "overall_mean": 51.0, "overall_std": 1.41, "long": [30.0, 34.0], "long_mean": 32.0, "long_std": 2.83}}
>>> print(comparison_lines(figures).strip().splitlines()[-1])
- Generated reply: +14.0 points (spreads 7.1 and 1.4): larger than the spread.

```
"""

from __future__ import annotations


def comparison_lines(comparison: dict | None, by_likelihood: dict | None = None, seed: int = 0) -> str:
    """The card's Table-4 paragraph: one row per training kind and scoring, mean +- spread over the seeds, and which
    seed's stage 3 this card's checkpoint is (``seed``, the chain's own)."""
    if comparison is None:
        return ""

    def spread(entry: dict, key: str) -> str:
        std = entry[f"{key}_std"]
        return f"{entry[f'{key}_mean']:.1f}" + ("" if std is None else f" ± {std:.1f}")

    seeds = comparison["seeds"]
    scorings = [(scoring, figures) for scoring, figures in (("generated reply", comparison),
                ("option likelihood", by_likelihood)) if figures is not None]  # fmt: skip
    rows = [
        f"| {kind} | {scoring} | {spread(figures[kind], 'overall')} | {spread(figures[kind], 'long')} | "
        + ", ".join(f"{value:.1f}" for value in figures[kind]["overall"])
        + f" ({', '.join(map(str, figures['seeds']))}) |"
        for scoring, figures in scorings
        for kind in ("progressive", "mixed")
    ]
    readings = [
        f"- {scoring.capitalize()}: {reading}"
        for scoring, figures in scorings
        if (reading := difference_reading(figures))
    ]
    return (
        f"## Progressive vs mixed (paper Table 4), {len(seeds)} seed(s): {', '.join(map(str, seeds))}\n\n"
        "Stages 1 -> 2 -> 3 vs the mixed single-stage baseline (`recipes/world/mixed.yaml`): the same rows, each at its "
        "split's frame count and as often, in one run from the image stage. Held-out accuracy at 192 frames, mean ± "
        "sample standard deviation over the seeds. This card's checkpoint and its tables above are seed "
        f"{seed}'s stage 3.\n\n"
        "| training | scoring | overall | long | overall per seed (seeds) |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n"
        + ("Progressive minus mixed, overall:\n\n" + "\n".join(readings) + "\n\n" if readings else "")
    )


def difference_reading(figures: dict) -> str | None:
    """Progressive minus mixed in overall accuracy, read against the seeds' spread: a difference larger than both
    kinds' sample standard deviations is called one, a smaller one is not; None with a single seed (no spread).

    >>> difference_reading({"seeds": [0, 1, 2], "progressive": {"overall_mean": 48.1, "overall_std": 6.1},
    ...                     "mixed": {"overall_mean": 50.7, "overall_std": 1.6}})
    '-2.6 points (spreads 6.1 and 1.6): within the spread, no difference at 3 seeds.'
    """
    progressive, mixed = figures["progressive"], figures["mixed"]
    if progressive["overall_std"] is None or mixed["overall_std"] is None:
        return None
    difference = progressive["overall_mean"] - mixed["overall_mean"]
    spread = max(progressive["overall_std"], mixed["overall_std"])
    verdict = (
        "larger than the spread"
        if abs(difference) > spread
        else f"within the spread, no difference at {len(figures['seeds'])} seeds"
    )
    return f"{difference:+.1f} points (spreads {progressive['overall_std']:.1f} and {mixed['overall_std']:.1f}): {verdict}."
