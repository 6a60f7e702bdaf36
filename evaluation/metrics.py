"""Scores of one run: overall accuracy, per duration, per task type / category, MLVU M-Avg, parse failures.

Accuracies are percentages over the questions that were answered (questions whose video was missing or
unreadable are counted apart, under ``skipped``). A parse failure is a wrong answer. For LongVideoBench the figure
lmms-eval 0.7.3 would publish is given too: its own letter parsing, with a parse failure scored as a random guess
(its expected value, 1 / number of options, so the figure is deterministic).

Example:
    >>> from evaluation.metrics import summarize
    >>> summary = summarize("videomme", predictions)  # doctest: +SKIP
    >>> summary["accuracy"], summary["by_duration"]["long"]["accuracy"]  # doctest: +SKIP
    (61.3, 52.1)
"""

from __future__ import annotations

from collections.abc import Iterable

from .answers import lmms_eval_longvideobench_choice
from .benchmarks import LONGVIDEOBENCH_DURATIONS, VIDEOMME_DURATIONS
from .store import Prediction

DURATION_ORDER = {
    "videomme": VIDEOMME_DURATIONS,
    "world": VIDEOMME_DURATIONS,
    "videomme_w_subtitle": VIDEOMME_DURATIONS,
    "longvideobench_val": tuple(LONGVIDEOBENCH_DURATIONS),
}


def _percent(correct: float, total: int) -> float | None:
    return round(100.0 * correct / total, 2) if total else None


def _group(predictions: list[Prediction], key: str, order: Iterable[str] | None = None) -> dict[str, dict]:
    groups: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        value = getattr(prediction, key)
        if value is not None:
            groups.setdefault(value, []).append(prediction)
    names = [name for name in order if name in groups] if order else sorted(groups)
    return {
        name: {
            "questions": len(groups[name]),
            "correct": sum(p.correct for p in groups[name]),
            "accuracy": _percent(sum(p.correct for p in groups[name]), len(groups[name])),
            "parse_failures": sum(p.choice is None for p in groups[name]),
        }
        for name in names
    }


def summarize(benchmark: str, predictions: Iterable[Prediction]) -> dict:
    """The scores of a run's predictions (answered and skipped) on ``benchmark``.

    Returns a dict with ``questions``, ``answered``, ``correct``, ``accuracy``, ``parse_failures``, ``skipped``
    (question id -> reason), ``by_duration``, ``by_category`` and ``headline`` (the paper's figure: M-Avg for
    MLVU, accuracy otherwise); MLVU adds ``m_avg``, LongVideoBench ``accuracy_lmms_eval``.
    """
    predictions = list(predictions)
    answered = [p for p in predictions if p.error is None]
    correct = sum(p.correct for p in answered)
    summary = {
        "questions": len(predictions),
        "answered": len(answered),
        "correct": correct,
        "accuracy": _percent(correct, len(answered)),
        "parse_failures": sum(p.choice is None for p in answered),
        "skipped": {p.question_id: p.error for p in predictions if p.error is not None},
        "by_duration": _group(answered, "duration_group", DURATION_ORDER.get(benchmark)),
        "by_category": _group(answered, "category"),
    }
    summary["headline"] = summary["accuracy"]
    if benchmark == "mlvu_dev":
        accuracies = [group["accuracy"] for group in summary["by_category"].values()]
        summary["m_avg"] = round(sum(accuracies) / len(accuracies), 2) if accuracies else None
        summary["headline"] = summary["m_avg"]
    if benchmark == "longvideobench_val":
        expected = 0.0
        for prediction in answered:
            letter = lmms_eval_longvideobench_choice(prediction.reply or "")
            expected += 1.0 / prediction.num_options if letter is None else float(letter == prediction.answer)
        summary["accuracy_lmms_eval"] = _percent(expected, len(answered))
    return summary


__all__ = ["summarize"]
