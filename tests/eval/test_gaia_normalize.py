import pytest

from eval.gaia_normalize import gaia_score, normalize_text, number_value


@pytest.mark.parametrize(
    "prediction, truth, expected",
    [
        # Numbers: $ % , are dropped and the rest compared as a float.
        ("17", "17", True),
        ("$17.00", "17", True),
        ("1,000", "1000", True),
        ("10%", "10", True),
        (" 3 ", "3.0", True),
        ("17 km", "17", False),  # units are not stripped: the official rule is strict
        ("seventeen", "17", False),
        ("0.1", "0.10000001", False),  # exact float equality, no rounding
        # Strings: whitespace and punctuation removed, lowercased.
        ("seagull", "sea gull", True),
        ("Sea-Gull!", "seagull", True),
        ("St. Louis", "st louis", True),
        ("Paris", "London", False),
        # Lists: split on , or ;, same length, element-wise.
        ("a, b; c", "a,b,c", True),
        ("apple, banana", "apple, banana, cherry", False),
        ("1.0, 2", "1, 2", True),
        ("$1, 2%", "1, 2", True),
        ("St. Louis, Paris", "St Louis, Paris", False),  # punctuation is kept inside list items
        ("b, a", "a, b", False),  # order matters
        # A missing prediction reads as the string "None", as in the official scorer.
        (None, "17", False),
    ],
)
def test_gaia_score_hand_computed(prediction, truth, expected):
    assert gaia_score(prediction, truth) is expected


def test_helpers():
    assert number_value("$1,234.5") == 1234.5
    assert number_value("abc") == float("inf")
    assert normalize_text(" Hello,  World! ") == "helloworld"
    assert normalize_text(" Hello,  World! ", remove_punct=False) == "hello,world!"
