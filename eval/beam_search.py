"""Step-level beam search guided by a scorer (AgentPRM test-time search).

Variant (Choudhury 2025, AgentPRM; Xi et al. 2025 use the same with their PRM): the
search state of a question is up to W partial trajectories (beams). At each agent
step every live beam is expanded into K candidates: K sampled assistant turns, each
with its tool calls executed. All candidates of all beams of all questions are
generated in **one** backend call per step (the agent loop's own batched generation,
each candidate on its own sampling stream). The candidates of a question are scored
by the scorer (:mod:`reagent.scorers`: for a value-head PRM with ``aggregate=last``,
the value of the step just taken) and the top W are kept, ties to the earlier
candidate, unscored ones last. A kept candidate that has finished (answered, out of
turns or tokens) leaves the beam for the finished pool; the search of a question ends
when no beam is live. The answer is the finished trajectory with the highest score.

Generated tokens (every candidate's, kept or not) are counted per question
(``extra["generated_tokens"]`` of the pick) so search and Best-of-N can be compared
at an equal generation budget.

With W = 1, K = 1 and greedy decoding the search is the plain agent loop: one
candidate per step, always kept (tested).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from eval.best_of_n import SCORE_KEY, Attempt, pick_best
from reagent.agent import AgentLoop, EpisodeSpec, _Episode
from reagent.tokenization import encode_prompt


def _branch(ep: _Episode, name: str) -> _Episode:
    """A copy of ``ep`` that can take its own next turn (its own sampling stream: ``name``)."""
    new = copy.copy(ep)
    new.messages, new.ids, new.mask = list(ep.messages), list(ep.ids), list(ep.mask)
    new.spec = dataclasses.replace(ep.spec, id=name)
    return new


def _top(scores: list[float | None], w: int) -> list[int]:
    order: list[int] = []
    left = list(range(len(scores)))
    while left and len(order) < w:
        best = left[pick_best([scores[i] for i in left])]
        order.append(best)
        left.remove(best)
    return order


def beam_search(loop: AgentLoop, scorer: Any, specs: list[EpisodeSpec], width: int,
                expand: int) -> list[Attempt]:
    """One :class:`Attempt` per spec: ``final`` the best finished trajectory, ``candidates``
    every finished trajectory kept by the search (``picked`` indexes it)."""
    if width < 1 or expand < 1:
        raise ValueError(f"beam width ({width}) and expand ({expand}) must be >= 1")
    beams: list[list[_Episode]] = []
    for s in specs:
        ep = _Episode(s, loop.env)
        if loop.backend.supports_tokens:
            ep.ids = encode_prompt(loop.tokenizer, ep.messages, tools=ep.schemas)
            ep.mask, ep.prompt_len = [0] * len(ep.ids), len(ep.ids)
        beams.append([ep])
    finished: list[list[tuple[Any, float | None]]] = [[] for _ in specs]
    tokens = [0] * len(specs)
    step = 0
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(loop.config.tool_workers) as pool:
        while any(beams):
            owner, cands = [], []
            for q, group in enumerate(beams):
                for b, ep in enumerate(group):
                    for k in range(expand):
                        name = ep.spec.id if width == expand == 1 else f"{specs[q].id}/s{step}b{b}k{k}"
                        cands.append(_branch(ep, name))
                        owner.append(q)
            gens = loop._generate(cands)  # every candidate of every beam of every question: one call
            work = [(ep, loop._take_turn(ep, gen)) for ep, gen in zip(cands, gens)]
            loop._run_tools([(ep, calls) for ep, calls in work if calls], pool)
            for q, gen in zip(owner, gens):
                tokens[q] += len(gen.token_ids)
            trajs = [loop._finish(ep) for ep in cands]
            scores = scorer(trajs)
            beams = [[] for _ in specs]
            for q in range(len(specs)):
                mine = [i for i, o in enumerate(owner) if o == q]
                for i in (mine[j] for j in _top([scores[i] for i in mine], width)):
                    if cands[i].done:
                        finished[q].append((trajs[i], scores[i]))
                    else:
                        beams[q].append(cands[i])
            step += 1
    attempts = []
    for q, spec in enumerate(specs):
        done = finished[q]
        for traj, score in done:
            traj.rewards[SCORE_KEY] = score
            traj.id = traj.id if width == expand == 1 else f"{spec.id}~{traj.id.rsplit('/', 1)[-1]}"
        best = pick_best([s for _, s in done])
        final = done[best][0]
        final.extra["generated_tokens"] = tokens[q]
        final.extra["beam"] = {"width": width, "expand": expand, "steps": step}
        attempts.append(Attempt(final=final, candidates=[t for t, _ in done], picked=best))
    return attempts
