"""Answer extraction on the reply shapes models really give; a reply without a readable letter is a failure."""

import pytest

from evaluation.answers import extract_choice, lmms_eval_longvideobench_choice

OPTIONS = ("a dog", "the red car", "a cat", "nothing at all")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        (" B\n", "B"),
        ("[C]", "C"),
        ("The best answer is B", "B"),
        ("The best answer is: (D).", "D"),
        ("Answer: B) the red car", "B"),
        ("Best option: (C", "C"),
        ("C) a cat", "C"),
        ("D. nothing at all", "D"),
        ("I think it is C because the man leaves the room.", "C"),
        ("b", "B"),
        ("(d)", "D"),
        ("answer: a", "A"),
        ("The correct option is A.", "A"),
        ("the red car", "B"),  # repeats exactly one option's text
        ("It shows the red car driving away.", "B"),
    ],
)
def test_letter_is_extracted(reply, expected):
    assert extract_choice(reply, "ABCD", OPTIONS) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "I am not sure what happens in the video.",
        "A man walks his dog along the beach.",  # the article "A" is not an answer
        "The answer is a bird",  # lowercase "a" followed by a word: the article again
        "A or B",  # two letters: ambiguous
        "E",  # not one of the options
        "Ho\x15ap g dle dip",  # what a random-weight model says
    ],
)
def test_no_letter_is_a_parse_failure(reply):
    assert extract_choice(reply, "ABCD", OPTIONS) is None


def test_fifth_option_counts_only_when_it_exists():
    assert extract_choice("E", "ABCDE") == "E"
    assert extract_choice("E", "ABCD") is None


def test_lmms_eval_longvideobench_rule_takes_first_capital_anywhere():
    # lmms-eval 0.7.3 parse_multi_choice_response: prefixes removed, then the first capital A-E, even in a word.
    assert lmms_eval_longvideobench_choice("The best answer is B") == "B"
    assert lmms_eval_longvideobench_choice("Answer: B") == "A"
    assert lmms_eval_longvideobench_choice("no letter here") is None
