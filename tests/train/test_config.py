"""TrainConfig: every enum-like field is checked at load, naming field, value and choices."""

import pytest

from reagent.config import load_config
from reagent.train.config import CHOICES, TrainConfig


@pytest.mark.parametrize("field", sorted(CHOICES))
def test_each_enum_field_rejects_a_typo_at_load(field, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(f"{field}: not-a-choice\n")
    with pytest.raises(ValueError) as err:
        load_config(TrainConfig, yaml_path=str(path))
    message = str(err.value)
    assert f"{field}='not-a-choice'" in message
    assert all(choice in message for choice in CHOICES[field])


def test_choices_match_their_sources_of_truth():
    from reagent.envs import ENV_NAMES
    from reagent.tiny_model import SIZES
    from reagent.train.algos import ADVANTAGES, AGGREGATIONS
    from rrm.judge import FailurePolicy

    assert CHOICES["env"] == tuple(ENV_NAMES)
    assert set(CHOICES["tiny_model_size"]) == set(SIZES)
    assert set(CHOICES["advantage"]) == set(ADVANTAGES)
    assert set(CHOICES["loss_agg"]) == set(AGGREGATIONS)
    assert set(CHOICES["on_judge_failure"]) == {p.value for p in FailurePolicy}
    for field, valid in CHOICES.items():  # the defaults are valid choices
        assert getattr(TrainConfig, field) in valid
