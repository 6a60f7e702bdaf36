"""Answer extraction: the option letter a reply chose, or ``None`` when it cannot be told (a parse failure).

A parse failure counts as a wrong answer and is reported as such; it is never replaced by a guess. The replies a
video model gives to "Respond with only the letter" prompts come in a handful of shapes, tried from the most to the
least explicit:

1. the reply is just a letter, maybe in brackets or followed by punctuation: ``"B"``, ``"(B)"``, ``"B."``, ``"b"``;
2. an answer phrase names it: ``"The best answer is B"``, ``"Answer: B) a dog"``, ``"Best option: (C"``,
   ``"I think it is C because ..."``;
3. the reply starts with an option label: ``"B. The man"``, ``"(c) three"``;
4. exactly one capital option letter stands alone somewhere in the reply (a sentence-initial article "A" followed
   by a lowercase word does not count);
5. the reply repeats exactly one option's text.

Example:
    >>> extract_choice("Answer: B) the red car", "ABCD")
    'B'
    >>> extract_choice("I think it is C because the man leaves", "ABCD")
    'C'
    >>> extract_choice("A man walks his dog.", "ABCD") is None
    True
    >>> extract_choice("the red car", "ABCD", options=("a dog", "the red car", "a cat", "nothing"))
    'B'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_PUNCTUATION = " \t\n.,:;!?'\"*`"
_BARE_LETTER = re.compile(r"^[(\[]?\s*([A-Za-z])\s*[)\]]?$")
# An answer word, then the letter: a capital one not starting a word, or a lowercase one standing alone.
_ANSWER_PHRASE = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is|would be|should be)?\s*[:\-]?\s*"
    r"(?:[(\[]\s*([A-Za-z])\s*[)\]]?|([A-Z])(?![A-Za-z'])|([a-z])(?=[.)\]]|\s*$))"
)
# "it is C", "I choose B": a capital letter after a verb.
_VERB_LETTER = re.compile(r"\b(?i:is|be|choose|select|pick)\s+(?i:option\s+)?[(\[]?([A-Z])(?![A-Za-z'])")
_LEADING_LABEL = re.compile(r"^[(\[]\s*([A-Za-z])\s*[)\]]|^([A-Za-z])\s*[.):\]](?!\w)")
_STANDALONE_CAPITAL = re.compile(r"(?<![A-Za-z'])[(\[]?([A-Z])[)\]]?(?![A-Za-z'])")


def extract_choice(reply: str, letters: str | Sequence[str], options: Sequence[str] | None = None) -> str | None:
    """The option letter (upper case, one of ``letters``) a reply chose, or ``None`` (a parse failure).

    Args:
        reply: the model's decoded reply.
        letters: the valid option letters, e.g. ``"ABCD"`` (LongVideoBench questions have up to five).
        options: the options' texts in letter order, to recognise a reply that repeats one of them.
    """
    valid = {letter.upper() for letter in letters}
    text = reply.strip().strip(_PUNCTUATION)
    if not text:
        return None

    bare = _BARE_LETTER.match(text)
    if bare:
        return _valid(bare.group(1), valid)

    for match in _ANSWER_PHRASE.finditer(text):
        letter = _valid(match.group(1) or match.group(2) or match.group(3), valid)
        if letter:
            return letter
    for match in _VERB_LETTER.finditer(text):
        letter = _valid(match.group(1), valid)
        if letter:
            return letter

    leading = _LEADING_LABEL.match(text)
    if leading:
        letter = _valid(leading.group(1) or leading.group(2), valid)
        if letter:
            return letter

    standalone = set()
    for match in _STANDALONE_CAPITAL.finditer(text):
        letter = match.group(1)
        if letter in valid and not _is_article(text, match):
            standalone.add(letter)
    if len(standalone) == 1:
        return standalone.pop()
    if standalone:  # several letters named: ambiguous
        return None

    if options:
        normalized = _normalize(text)
        hits = [chr(ord("A") + i) for i, option in enumerate(options) if _normalize(option) in normalized]
        exact = [chr(ord("A") + i) for i, option in enumerate(options) if _normalize(option) == normalized]
        for candidates in (exact, hits):
            if len(candidates) == 1 and candidates[0] in valid:
                return candidates[0]
    return None


def lmms_eval_longvideobench_choice(reply: str) -> str | None:
    """LongVideoBench's letter as lmms-eval 0.7.3 parses it (``parse_multi_choice_response``), ``None`` where it
    would pick a random letter instead.

    Its rule: delete the answer prefixes it knows, then take the first capital A-E anywhere in the reply, even
    inside a word ("Answer: B" gives "A"). Used only to report the figure lmms-eval would publish next to the
    kit's strict one.
    """
    text = reply.strip()
    for prefix in (
        "The best answer is",
        "The correct answer is",
        "The answer is",
        "The answer",
        "The best option is",
        "The correct option is",
        "Best answer:",
        "Best option:",
    ):
        text = text.replace(prefix, "")
    match = re.search(r"[ABCDE]", text)
    return match.group(0) if match else None


def _valid(letter: str | None, valid: set[str]) -> str | None:
    if letter is None:
        return None
    letter = letter.upper()
    return letter if letter in valid else None


def _is_article(text: str, match: re.Match) -> bool:
    """``A`` used as the English article: followed by a lowercase word that is not a conjunction ("A man walks")."""
    if match.group(0) != "A":
        return False
    following = re.match(r" ([a-z]+)", text[match.end() :])
    return following is not None and following.group(1) not in ("or", "and", "nor")


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


__all__ = ["extract_choice", "lmms_eval_longvideobench_choice"]
