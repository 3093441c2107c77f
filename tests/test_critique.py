"""When Reagent-C revises: empty-critique detection and the revise decision (issue 19)."""

import pytest

from reagent.critique import (SKIP_ABOVE_THRESHOLD, SKIP_EMPTY_CRITIQUE, SKIP_JUDGE_FAILED,
                              is_empty_critique, revise_decision)
from reagent.records import Judgment


@pytest.mark.parametrize("text", ["", "  \n", "- No flaws found.", "No issues found.", "None.",
                                  "no problems detected", "Nothing to fix.", "- No specific flaws were named.",
                                  "- No flaws found.\n- None."])
def test_critiques_that_name_nothing_are_empty(text):
    assert is_empty_critique(text)


@pytest.mark.parametrize("text", ["- You looked up K, which the question does not ask about.",
                                  "No answer in \\boxed{}; finish with the number.",
                                  "- No flaws found.\n- You called lookup(A) more than once.",
                                  "Look up account B before answering; never guess a balance.",
                                  "No errors in the sum, but you looked up K twice.",
                                  "Nothing was looked up; look up A first."])
def test_critiques_that_name_a_flaw_are_not_empty(text):
    assert not is_empty_critique(text)


def test_revise_decision():
    flawed = Judgment(critique="- Look up account B.", score=0.4)
    clean = Judgment(critique="- No flaws found.", score=1.0)
    low_but_empty = Judgment(critique="No issues found.", score=0.5)
    failed = Judgment(status="missing_blocks", critique="- Look up B.", score=None)
    # no threshold: every scored attempt is revised (the paper's Reagent-C), a failed one never
    assert [revise_decision(j, None) for j in (flawed, clean, low_but_empty)] == [None, None, None]
    assert revise_decision(failed, None) == revise_decision(None, 0.9) == SKIP_JUDGE_FAILED
    assert revise_decision(flawed, 0.9) is None
    assert revise_decision(clean, 0.9) == revise_decision(flawed, 0.4) == SKIP_ABOVE_THRESHOLD
    assert revise_decision(low_but_empty, 0.9) == SKIP_EMPTY_CRITIQUE
    assert revise_decision(failed, 0.9) == SKIP_JUDGE_FAILED
