"""Run under ``accelerate launch`` (ZeRO-3) by test_vllm_sync.py: hand the policy's weights
to a VLLMBackend whose engine is a fake that records what it receives.

argv: MODEL_DIR OUT_DIR. Writes ``OUT_DIR/rank{r}.json``: for every tensor the engine got,
its shape and whether it equals the weight in MODEL_DIR; and the shapes the old path
(``unwrap_model(model).state_dict()``) would have handed it.
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from reagent.generation.vllm_backend import VLLMBackend
from reagent.train.runtime import Ranks, full_weights


class RecordingModel:
    def __init__(self):
        self.got = {}

    def load_weights(self, weights):
        for name, tensor in weights:
            self.got[name] = tensor.detach().cpu().clone()


def main(model_dir: str, out_dir: str) -> None:
    acc = Accelerator()
    ranks = Ranks(acc)
    acc.state.deepspeed_plugin.deepspeed_config.update(
        {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "train_batch_size": ranks.world})
    # the weights on disk (a model built now would be partitioned by zero.Init too)
    reference = load_file(str(Path(model_dir) / "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = acc.prepare(model, optimizer)
    engine = RecordingModel()
    backend = VLLMBackend.__new__(VLLMBackend)  # the real load_weights, a fake engine
    backend.tensor_parallel_size = 1
    backend.llm = SimpleNamespace(llm_engine=SimpleNamespace(model_executor=SimpleNamespace(
        driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=SimpleNamespace(model=engine))))))
    backend.load_weights(full_weights(acc, model))
    old_path = {k: list(v.shape) for k, v in acc.unwrap_model(model).state_dict().items()}
    result = {"received": {k: {"shape": list(v.shape), "shape_ok": list(v.shape) == list(reference[k].shape),
                               "equal": bool(torch.equal(v, reference[k]))} for k, v in engine.got.items()},
              "old_path_shapes": old_path, "world": ranks.world}
    Path(out_dir, f"rank{ranks.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
