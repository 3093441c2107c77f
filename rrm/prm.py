"""The value-head process reward model and its batched scorer.

Model: a Hugging Face ``AutoModelForTokenClassification`` with one label on any
causal-LM backbone (Qwen2, Llama, ... - every decoder transformers ships has a
``*ForTokenClassification``). Built from a causal-LM directory, the backbone weights
load and the linear ``score`` head starts fresh; saved with ``save_pretrained`` it
reloads with ``AutoModelForTokenClassification.from_pretrained`` and needs no code
from this project. The head's raw output at a step's last token
(:mod:`reagent.steps`) is that step's value Q(s_t, a_t): an estimate of the expected
final outcome (0..1 for 0/1 outcomes, but not squashed, so TD targets outside that
range are representable).

:class:`PRMScorer` implements the project's scorer interface: ``score_steps(trajs)``
gives each trajectory's step values and ``__call__(trajs)`` the value at its last
step (what Best-of-N ranks by), ``None`` where a trajectory cannot be scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reagent.records import Trajectory
from rrm.prm_data import StepItem, collate_steps, encode_messages

PRM_MARKER = "reagent_prm"  # key in config.json telling a PRM from the backbone it came from


def load_prm(path: str | Path, dtype: torch.dtype = torch.float32) -> Any:
    """A PRM from ``path``: a saved PRM, or a causal-LM backbone given a fresh one-output head."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(path)
    fresh = not getattr(config, PRM_MARKER, None)
    config.num_labels = 1
    config.problem_type = "regression"
    model = AutoModelForTokenClassification.from_pretrained(path, config=config, dtype=dtype)
    if fresh:
        setattr(model.config, PRM_MARKER, {"head": "token_classification", "outputs": "step value",
                                           "backbone": str(path)})
    if model.config.pad_token_id is None:
        model.config.pad_token_id = getattr(config, "eos_token_id", None)
    return model


def step_values(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, T)`` values at the step positions (zero at padded steps)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, L, 1)
    values = logits[..., 0].float().gather(1, batch["positions"])
    return values * batch["step_mask"]


class PRMScorer:
    """Batched step values of trajectories from a saved PRM (or any ``load_prm`` model)."""

    def __init__(self, model: str | Path | Any, tokenizer: Any = None, batch_size: int = 16,
                 device: str = "auto", max_seq_len: int = 4096):
        from transformers import AutoTokenizer

        from reagent.generation.hf import resolve_device

        self.device = resolve_device(device)
        self.model = (load_prm(model) if isinstance(model, (str, Path)) else model).to(self.device).eval()
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        self.batch_size, self.max_seq_len = batch_size, max_seq_len
        self.name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
        self.skipped: dict[str, int] = {}
        self.lengths: list[int] = []  # tokens read per trajectory in the last score_steps call (0: skipped)

    def _encode(self, traj: Trajectory, step_texts: list[str] | None) -> StepItem | None:
        try:
            ids, pos = encode_messages(self.tokenizer, traj.messages, step_texts)
        except ValueError as e:
            self.skipped[str(e)[:80]] = self.skipped.get(str(e)[:80], 0) + 1
            return None
        if len(ids) > self.max_seq_len:
            self.skipped["longer than max_seq_len"] = self.skipped.get("longer than max_seq_len", 0) + 1
            return None
        return StepItem(traj.id, traj.task_id, ids, pos, [0.0] * len(pos), [0.0] * len(pos), None)

    @torch.no_grad()
    def score_steps(self, trajs: list[Trajectory], step_texts: list[list[str] | None] | None = None
                    ) -> list[list[float] | None]:
        """Each trajectory's step values; ``None`` for one that could not be encoded."""
        texts = step_texts or [None] * len(trajs)
        items = [self._encode(t, s) for t, s in zip(trajs, texts)]
        self.lengths = [len(it.input_ids) if it is not None else 0 for it in items]
        out: list[list[float] | None] = [None] * len(trajs)
        todo = sorted((i for i, it in enumerate(items) if it is not None), key=lambda i: len(items[i].input_ids))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            batch = {k: v.to(self.device) for k, v in collate_steps([items[i] for i in chunk], pad).items()}
            values = step_values(self.model, batch).cpu()
            for row, i in enumerate(chunk):
                out[i] = values[row, :len(items[i].positions)].tolist()
        return out

    def __call__(self, trajs: list[Trajectory]) -> list[float | None]:
        """Trajectory-level score: the value at the last step."""
        return [v[-1] if v else None for v in self.score_steps(trajs)]


SCORER_KINDS = ("prm", "pvm", "orm")


def load_value_scorer(kind: str, path: str | Path, aggregate: str = "last", **kwargs: Any) -> Any:
    """A :class:`reagent.scorers.StepValueScorer` over the PRM at ``path`` (``train-prm``'s
    ``out/final``), checked against ``kind``: ``prm`` needs ``objective: prm`` with
    ``beta > 0`` (promise + progress), ``pvm`` needs ``beta == 0`` (promise only), ``orm``
    needs ``objective: orm`` (whose only trained value is the last step's)."""
    import json

    from reagent.scorers import StepValueScorer

    if kind not in SCORER_KINDS:
        raise ValueError(f"scorer={kind!r} is not one of {', '.join(SCORER_KINDS)}")
    meta_file = Path(path) / "reagent_prm.json"
    if not meta_file.exists():
        raise ValueError(f"{path}: no reagent_prm.json; give a trained PRM (reagent train-prm's out/final)")
    meta = json.loads(meta_file.read_text())
    objective, beta = meta.get("objective", "prm"), float(meta.get("beta", 1.0))
    trained_as = "orm" if objective == "orm" else "pvm" if beta == 0 else "prm"
    if trained_as != kind:
        raise ValueError(f"--scorer {kind}: {meta_file} was trained as {trained_as} "
                         f"(objective={objective}, beta={beta}); use --scorer {trained_as}")
    if kind == "orm" and aggregate != "last":
        raise ValueError(f"--scorer orm with aggregate={aggregate!r}: an ORM is trained on the last step only; "
                         "use aggregate last")
    return StepValueScorer(PRMScorer(path, **kwargs), aggregate, name=kind)
