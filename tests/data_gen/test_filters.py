"""Leakage filter, de-duplication, balancing and build-dataset's by-task split."""

from __future__ import annotations

from collections import Counter

import pytest

from data_gen.filters import balance, clean, leaks_answer, split_key, task_of
from reagent.records import JudgeExample
from reagent.train.data import split_by_group


def split_by_task(examples, val_fraction=0.1, seed=0):
    """build-dataset's split: the trainers' splitter keyed on task id, linked by question."""
    return split_by_group(examples, task_of, val_fraction, seed, linked=split_key)


def ex(task: str = "t1", question: str | None = None, critique: str = "- fine", score=0.5,
       outcome=1.0, reference="Paris", status: str = "ok", traj: str | None = None) -> JudgeExample:
    question = question if question is not None else f"question of {task}"
    return JudgeExample(question=question, trajectory=traj or f"Question: {question}\n{id(object())}",
                        critique=critique, analysis="a", score=score, outcome=outcome,
                        teacher="t", extra={"task_id": task, "status": status,
                                            "reference": reference})


@pytest.mark.parametrize("critique, reference, leaks", [
    ("- The answer is Paris.", "Paris", True),
    ("- the capital: PARIS!", "paris", True),  # case and punctuation normalised
    ("- Check the Beatles' albums.", "The Beatles", True),  # articles dropped
    ("- Look up account 159 again.", "59", False),  # whole tokens only
    ("- Use calc: 59 is what you should get.", "59", True),
    ("- Search for the city first.", ["Paris", "City of Light"], False),
    ("- It is the city of light.", ["Paris", "City of Light"], True),  # any alias
    ("- No issues found.", "no", None),  # yes/no answers cannot be checked
    ("- fine", None, None),
])
def test_leaks_answer(critique, reference, leaks):
    assert leaks_answer(critique, reference) is leaks


def test_clean_drops_unparsed_leaks_and_duplicates_with_counts():
    examples = [
        ex("a", critique="- Answer Paris directly."),  # leak
        ex("b", traj="same"), ex("c", traj="same"),  # duplicate trajectory
        ex("d", status="missing_score", score=None),
        ex("e", reference=None),  # kept, leak unchecked
        ex("f", status="out_of_range", score=1.0),
    ]
    kept, counts = clean(examples)
    assert [task_of(e) for e in kept] == ["b", "e"]
    assert counts == Counter({"dropped_leak": 1, "dropped_duplicate": 1, "leak_unchecked": 1,
                              "dropped_status_missing_score": 1,
                              "dropped_status_out_of_range": 1})
    kept, counts = clean(examples, keep_statuses=("ok", "out_of_range"), drop_leaks=False)
    assert [task_of(e) for e in kept] == ["a", "b", "e", "f"]


def test_split_by_task_keeps_tasks_and_questions_on_one_side():
    examples = []
    for i in range(40):
        for k in range(3):  # three trajectories per task
            examples.append(ex(f"task-{i}", outcome=float(k % 2)))
    # Two task ids sharing one question must also stay together.
    examples += [ex("twin-a", question="shared?"), ex("twin-b", question="Shared ?")]
    train, val = split_by_task(examples, val_fraction=0.25, seed=3)
    twins = {task_of(e) for e in (val if any(task_of(e) == "twin-a" for e in val) else train)}
    assert {"twin-a", "twin-b"} <= twins  # linked by the normalised question
    assert len(train) + len(val) == len(examples)
    assert not {task_of(e) for e in train} & {task_of(e) for e in val}
    assert not {split_key(e) for e in train} & {split_key(e) for e in val}
    assert 0.2 <= len(val) / len(examples) <= 0.3
    again = split_by_task(examples, val_fraction=0.25, seed=3)
    assert [id(e) for e in again[1]] == [id(e) for e in val]  # deterministic for a seed
    other = split_by_task(examples, val_fraction=0.25, seed=4)[1]
    assert {task_of(e) for e in other} != {task_of(e) for e in val}
    assert split_by_task(examples, val_fraction=0.0)[1] == []


def test_split_needs_two_groups_for_validation():
    train, val = split_by_task([ex("only"), ex("only")], val_fraction=0.5)
    assert len(train) == 2 and val == []


def test_balance_by_outcome_and_score():
    examples = ([ex(f"c{i}", outcome=1.0, score=0.9) for i in range(10)]
                + [ex(f"i{i}", outcome=0.0, score=[0.1, 0.35][i % 2]) for i in range(4)])
    by_outcome = balance(examples, "outcome", seed=0)
    assert Counter(e.outcome for e in by_outcome) == {1.0: 4, 0.0: 4}
    assert balance(examples, "outcome", seed=0) == by_outcome  # seeded
    capped = balance(examples, "outcome", cap=6, seed=0)
    assert Counter(e.outcome for e in capped) == {1.0: 6, 0.0: 4}
    both = balance(examples, "outcome_score", bins=5, seed=0)  # cells of 10, 2 and 2
    assert Counter((e.outcome, e.score) for e in both) == {(1.0, 0.9): 2, (0.0, 0.1): 2,
                                                           (0.0, 0.35): 2}
    assert balance(examples, "none") == examples
    with pytest.raises(ValueError, match="balance='bins' is not one of"):
        balance(examples, "bins")


def test_balance_unknown_outcomes_do_not_set_the_cap():
    # 10 correct, 4 incorrect, 1 without outcome: the cap is 4 (smallest known cell), not 1.
    examples = ([ex(f"c{i}", outcome=1.0) for i in range(10)]
                + [ex(f"i{i}", outcome=0.0) for i in range(4)] + [ex("u", outcome=None)])
    kept = balance(examples, "outcome", seed=0)
    assert Counter(e.outcome for e in kept) == {1.0: 4, 0.0: 4, None: 1}
    only_unknown = [ex(f"u{i}", outcome=None) for i in range(3)]
    assert balance(only_unknown, "outcome") == only_unknown


def test_analysis_leaks_only_what_the_trajectory_does_not_show():
    shown = ex("a", traj="Question: capital?\nassistant: \\boxed{Paris}")
    shown.analysis = "The agent boxed Paris after one lookup."
    hidden = ex("b", traj="Question: capital?\nassistant: \\boxed{Lyon}")
    hidden.analysis = "The agent should have answered Paris."
    kept, counts = clean([shown, hidden])
    assert kept == [shown] and counts["dropped_leak"] == 1
    kept, counts = clean([shown, hidden], leak_fields=("critique",))  # analysis not checked
    assert kept == [shown, hidden] and counts["dropped_leak"] == 0
