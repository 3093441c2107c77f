"""The one training runtime every trainer stands on: ranks, rank-0 logging, checkpoints.

Policy SFT (:mod:`reagent.train.sft`), judge SFT (:mod:`rrm.sft`) and GRPO
(:mod:`reagent.train.trainer`) use it, and so must the PRM and judge-RL trainers, so
that a fix here (a ZeRO-3 gather, an atomic rename) holds for all of them. It is right
under one process, DDP and DeepSpeed ZeRO-2/3, on CPU or GPU:

* :class:`Ranks` -- rank and world size from ``torch.distributed`` when it is
  initialised, else the launcher's ``RANK``/``WORLD_SIZE``, else accelerate (which
  reports one process for DeepSpeed on CPU even when DeepSpeed runs several); barrier
  and the few collectives the loops need (sum, max, gather of Python objects).
* :class:`MetricsLogger` -- rank 0 writes, every rank may call; its sinks are the
  trackers of ``report_to`` (:mod:`reagent.trackers`: jsonl, tensorboard, wandb; or any
  object with ``write(step, metrics)``/``truncate_after(step)``/``close()``), so the
  loops never branch on a tracker. ``truncate_after(step)`` on resume drops what was
  logged after the checkpoint (the JSONL file is rewritten atomically).
* Checkpoints: ``out/checkpoints/step-000004/`` holds ``model/`` (``save_pretrained``
  of the *gathered* weights, with the tokenizer: loadable by transformers and vLLM),
  ``state/`` (``accelerate.save_state``: optimizer, registered schedulers, and under
  DeepSpeed its own partitioned checkpoint), ``rng_rank{r}.pt`` (every process's RNG,
  by its true rank), ``trainer_state.json``
  (step, data position, anything else the trainer needs) and the ``COMPLETE`` marker.
  It is written under ``step-000004.tmp`` and renamed after the marker, so a kill
  never leaves a directory resume would pick; the newest ``keep`` are kept.
  :func:`load_checkpoint` restores everything through ``accelerate.load_state``: no
  ``strict=False`` anywhere, a mismatch is an error.
* :func:`generation_model` and :func:`full_weights` -- the policy with full weights for
  generation, and ``(name, full tensor)`` pairs for a vLLM weight sync (both gather
  under ZeRO-3; every rank must call them).
* Data for supervised loops lives beside it in :mod:`reagent.train.data`
  (length-grouped batches, padding, the masked-LM loss, the one train/val splitter).

A supervised trainer loop on it (what :mod:`reagent.train.sft` does; batching and the
loss come from :mod:`reagent.train.data`)::

    acc = Accelerator(gradient_accumulation_steps=k)
    ranks = Ranks(acc)
    sampler = LengthGroupedBatches(lengths, batch_size, seed)
    loader = DataLoader(examples, batch_sampler=sampler, collate_fn=pad_collate(pad_id))
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    log = MetricsLogger(out, ranks.main)
    step, epoch, skip = 0, 0, 0
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(acc, ckpt)          # model, optimizer, RNG: exact
        step, epoch, skip = state["step"], state["epoch"], state["batches_in_epoch"]
        log.truncate_after(step)
    while step < max_steps:
        for i, batch in enumerate(epoch_batches(acc, loader, sampler, epoch, skip), start=skip + 1):
            with acc.accumulate(model):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss, _ = masked_lm_loss(logits, batch["labels"])
                acc.backward(loss); optimizer.step(); optimizer.zero_grad()
            if acc.sync_gradients:
                step += 1
                log.log(step, {"train/loss": loss.item()})
                if step % save_every == 0:                 # every rank calls it
                    save_checkpoint(acc, ranks, model, tokenizer, out, step,
                                    {"epoch": epoch, "batches_in_epoch": i})
        epoch, skip = epoch + 1, 0
    save_model(acc, ranks, model, tokenizer, out / "final")
    log.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from reagent.trackers import DEFAULT_REPORT_TO, make_sinks

MARKER = "COMPLETE"


# ------------------------------------------------------------------------------ ranks


def _dist() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class Ranks:
    """Rank, world size, barrier and collectives that are right on every backend."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator

    @property
    def rank(self) -> int:
        if _dist():
            return torch.distributed.get_rank()
        fallback = self.accelerator.process_index if self.accelerator is not None else 0
        return int(os.environ.get("RANK", fallback))

    @property
    def world(self) -> int:
        if _dist():
            return torch.distributed.get_world_size()
        fallback = self.accelerator.num_processes if self.accelerator is not None else 1
        return int(os.environ.get("WORLD_SIZE", fallback))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _device(self) -> torch.device:
        if self.accelerator is not None:
            return self.accelerator.device
        return torch.device("cpu")

    def barrier(self) -> None:
        if _dist() and self.world > 1:
            torch.distributed.barrier()

    def gather(self, items: list) -> list:
        """Every rank's list, concatenated in rank order (on every rank)."""
        if not (_dist() and self.world > 1):
            return list(items)
        parts: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(parts, list(items))
        return [x for part in parts for x in part]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (returned for chaining)."""
        if _dist() and self.world > 1:
            torch.distributed.all_reduce(tensor)
        return tensor

    def max_int(self, value: int) -> int:
        """The largest ``value`` of any rank (e.g. micro-batches, so all run as many)."""
        if not (_dist() and self.world > 1):
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.long, device=self._device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())


def zero_stage(accelerator: Any) -> int:
    """The DeepSpeed ZeRO stage of this run; 0 without DeepSpeed."""
    plugin = getattr(getattr(accelerator, "state", None), "deepspeed_plugin", None)
    return int(plugin.zero_stage) if plugin is not None else 0


# ---------------------------------------------------------------------------- metrics


class MetricsLogger:
    """Rank-0 printing and metrics; loops call it on every rank with no rank branches.

    ``sinks`` default to the trackers named in ``report_to`` (:mod:`reagent.trackers`:
    jsonl, tensorboard, wandb) under ``output_dir``; ``echo`` (e.g. a tqdm bar's
    ``write``) also gets a one-line summary of each step. A sink that fails to write is
    reported once and the run goes on (a tracker outage must not kill a long run).
    """

    def __init__(self, output_dir: str | Path, is_main: bool = True, sinks: list | None = None,
                 echo: Callable[[str], Any] | None = None,
                 report_to: list[str] | tuple[str, ...] = DEFAULT_REPORT_TO,
                 run_name: str | None = None, config: dict | None = None):
        self.is_main = is_main
        self.echo = echo
        self.path = Path(output_dir) / "metrics.jsonl"
        self.sinks = [] if not is_main else (
            sinks if sinks is not None else make_sinks(report_to, output_dir, run_name, config))
        self.failures: dict[str, str] = {}

    def log(self, step: int, metrics: dict) -> None:
        if not self.is_main:
            return
        for sink in self.sinks:
            try:
                sink.write(step, metrics)
            except Exception as e:  # noqa: BLE001 - reported once; the run goes on
                name = type(sink).__name__
                if name not in self.failures:
                    print(f"metrics: {name} failed to write step {step}: {e!r}; training continues",
                          flush=True)
                self.failures[name] = repr(e)
        if self.echo is not None:
            self.echo(f"step {step}: " + json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
                 if not isinstance(v, dict)}, default=str))

    def truncate_after(self, step: int) -> None:
        """Drop what was logged after ``step`` (a resumed run logs those steps again)."""
        for sink in self.sinks:
            sink.truncate_after(step)

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self.is_main:
            print(*args, **kwargs, flush=True)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


# ------------------------------------------------------------------------ full weights


def _gathered(accelerator: Any, params: list) -> contextlib.AbstractContextManager:
    if zero_stage(accelerator) == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(params)
    return contextlib.nullcontext()


@contextlib.contextmanager
def generation_model(accelerator: Any, model: Any) -> Iterator[Any]:
    """The unwrapped model with full weights for generation (gathered under ZeRO-3).

    Collective under ZeRO-3: every rank enters it."""
    unwrapped = accelerator.unwrap_model(model)
    with _gathered(accelerator, list(unwrapped.parameters())):
        yield unwrapped


def full_weights(accelerator: Any, model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` for every parameter, one gathered at a time (ZeRO-3).

    What a vLLM weight sync needs: each tensor is valid while the consumer holds it
    (the generator stays inside that parameter's gather). Collective under ZeRO-3:
    every rank must consume the whole iterator, in order."""
    unwrapped = accelerator.unwrap_model(model)
    for name, param in unwrapped.named_parameters():
        with _gathered(accelerator, [param]):
            yield name, param.data


def gathered_state_dict(accelerator: Any, model: Any, ranks: Ranks) -> dict[str, torch.Tensor]:
    """The full state dict on the main rank (CPU copies), ``{}`` elsewhere. Collective."""
    unwrapped = accelerator.unwrap_model(model)
    out: dict[str, torch.Tensor] = {}
    names = set()
    for name, tensor in full_weights(accelerator, model):
        names.add(name)
        if ranks.main:
            out[name] = tensor.detach().cpu().clone()
    if ranks.main:  # buffers (never partitioned) and tied aliases come from the module
        param_names = {n for n, _ in unwrapped.named_parameters(remove_duplicate=False)}
        for key, value in unwrapped.state_dict().items():
            if key not in names and key not in param_names:
                out[key] = value.detach().cpu().clone()
    return out


def save_model(accelerator: Any, ranks: Ranks, model: Any, tokenizer: Any, path: str | Path) -> None:
    """``save_pretrained`` of the gathered weights plus the tokenizer (rank 0 writes)."""
    state_dict = gathered_state_dict(accelerator, model, ranks)
    if ranks.main:
        accelerator.unwrap_model(model).save_pretrained(path, state_dict=state_dict,
                                                        safe_serialization=True)
        tokenizer.save_pretrained(path)


# ------------------------------------------------------------------------- checkpoints


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:06d}"


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoints with a ``COMPLETE`` marker, oldest first (``.tmp`` ones ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.glob("step-*")
             if p.is_dir() and not p.name.endswith(".tmp") and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator: Any, ranks: Ranks, model: Any, tokenizer: Any,
                    output_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``checkpoints/step-N`` atomically on every rank's behalf; prune to ``keep``.

    Collective: every rank calls it (ZeRO shards save their own part, the model is
    gathered). ``state`` must be JSON-serialisable (step, data position, counters).
    """
    final = checkpoint_dir(output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if ranks.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    ranks.barrier()
    accelerator.save_state(str(tmp / "state"))
    # accelerate names RNG files by its own process index, which is 0 on every rank for
    # DeepSpeed on CPU: each rank also writes its own, by the true rank
    torch.save(rng_state(), tmp / f"rng_rank{ranks.rank}.pt")
    save_model(accelerator, ranks, model, tokenizer, tmp / "model")
    ranks.barrier()
    if ranks.main:
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}, indent=2,
                                                           default=str))
        (tmp / MARKER).write_text(str(step))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    ranks.barrier()
    return final


def load_checkpoint(accelerator: Any, ckpt: str | Path, ranks: Ranks | None = None) -> dict:
    """Restore model, optimizer, registered schedulers and RNG; return the trainer state."""
    ckpt = Path(ckpt)
    accelerator.load_state(str(ckpt / "state"))
    rank = (ranks or Ranks(accelerator)).rank
    rng_file = ckpt / f"rng_rank{rank}.pt"
    if not rng_file.exists():
        raise FileNotFoundError(f"{rng_file} is missing: checkpoint {ckpt} was written by a run "
                                f"with fewer processes than this one (rank {rank})")
    set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((ckpt / "trainer_state.json").read_text())


def rng_state() -> dict:
    """Python, numpy, torch and CUDA RNG states of this process."""
    import random

    import numpy as np

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
