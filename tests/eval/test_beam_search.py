"""Step-level beam search: W=1, K=1 is the plain agent loop; a good scorer steers it."""

from itertools import count

import pytest

from eval.beam_search import beam_search
from reagent.agent import AgentConfig, AgentLoop, specs_for
from reagent.envs import make_env
from reagent.generation.hf import HFBackend
from reagent.scorers import FunctionScorer
from tests.scripted import ScriptedBackend
from tests.test_agent import solver


@pytest.fixture(scope="module")
def env():
    return make_env("toy", seed=1)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_width_1_expand_1_is_the_plain_agent_loop(env, tiny_model_dir, temperature):
    backend = HFBackend(str(tiny_model_dir), device="cpu")
    config = AgentConfig(max_turns=3, max_tokens=80, max_new_tokens=24, temperature=temperature, seed=4)
    specs = specs_for(env, env.tasks("train", 3), 1)
    plain = AgentLoop(backend, env, config).run(specs)
    scorer = FunctionScorer(lambda trajs: [0.0] * len(trajs), "constant")
    found = beam_search(AgentLoop(backend, env, config), scorer, specs, width=1, expand=1)
    assert [a.final.token_ids for a in found] == [t.token_ids for t in plain]
    assert [[m.to_dict() for m in a.final.messages] for a in found] == [[m.to_dict() for m in t.messages]
                                                                         for t in plain]
    assert [a.final.id for a in found] == [t.id for t in plain]
    # the loss mask is 1 on generated tokens only: the search counted exactly those
    assert [a.final.extra["generated_tokens"] for a in found] == [sum(t.loss_mask) for t in plain]


class CountingBackend(ScriptedBackend):
    """Every other generated turn (over all rows of all calls) is a wrong guess."""

    def __init__(self, tokenizer):
        n = count()
        super().__init__(tokenizer, lambda text, turn: solver(text, turn) if next(n) % 2 == 0 else "\\boxed{0}")
        self.calls = 0

    def generate(self, prompts, params):
        self.calls += 1
        return super().generate(prompts, params)


def test_beam_keeps_the_steps_the_scorer_values(env, tiny_tokenizer):
    # A scorer that knows the task: a finished wrong answer 0, a live trajectory 0.5, right 1.
    def knows(trajs):
        return [0.5 if not t.stop_reason else float((t.outcome or 0.0) >= 1.0) for t in trajs]

    tasks = env.tasks("train", 4)
    config = AgentConfig(max_turns=4, max_tokens=2000, max_new_tokens=200, temperature=1.0)
    plain = AgentLoop(CountingBackend(tiny_tokenizer), env, config).run(specs_for(env, tasks, 1))
    backend = CountingBackend(tiny_tokenizer)
    found = beam_search(AgentLoop(backend, env, config), FunctionScorer(knows), specs_for(env, tasks, 1),
                        width=1, expand=2)
    assert sum((t.outcome or 0) >= 1 for t in plain) < len(tasks)  # alone, the guesses lose some
    assert all(a.final.outcome == 1.0 for a in found)  # the search always keeps the solver's step
    steps = max(a.final.extra["beam"]["steps"] for a in found)
    assert backend.calls == steps  # one generation call per step for all beams of all questions
    assert all(a.final.extra["generated_tokens"] > sum(a.final.loss_mask) for a in found)  # losers count too


def test_reagent_eval_beam_flags(scripted_toy, monkeypatch, tmp_path):  # noqa: F811
    import json

    from eval import cli_eval
    from tests.eval.test_harness import toy_config

    n = count()
    scripted_toy(lambda text, turn: solver(text, turn) if next(n) % 2 == 0 else "\\boxed{0}")
    knows = FunctionScorer(lambda trajs: [0.5 if not t.stop_reason else float((t.outcome or 0) >= 1)
                                          for t in trajs])
    monkeypatch.setattr(cli_eval, "make_scorer", lambda c, judge: knows)
    assert cli_eval.run(toy_config(tmp_path, beam=2, expand=2, scorer="prm", scorer_model="unused")) == 0
    recs = [json.loads(x) for x in (tmp_path / "toy" / "records.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["score"] == 1.0 for r in recs)
    assert all(r["made_by"]["method"] == "beam_2x2" and r["trajectory"]["generated_tokens"] > 0
               for r in recs)
    with pytest.raises(ValueError, match="separate methods"):
        toy_config(tmp_path, beam=2, best_of=2, scorer="prm", scorer_model="x")


from tests.eval.test_harness import scripted_toy  # noqa: E402,F401  (fixture)
