"""The one config of ``reagent train`` (GRPO, Reagent-R, Reagent-U)."""

from __future__ import annotations

from dataclasses import dataclass

from reagent.config import cfg
from reagent.template_options import (
    chat_template_kwargs_field,
    check_template_options,
    judge_chat_template_kwargs_field,
    tool_format_field,
)
from reagent.trackers import report_to_field, validate_report_to

VARIANTS = ("grpo", "reagent-r", "reagent-u")

# Every enum-like field and its valid values, checked when the config is built (a typo
# in a YAML file fails at load, naming the field, the value and the choices, not after
# the first rollout). Tested against the sources of truth (ENV_NAMES, ADVANTAGES, ...).
CHOICES: dict[str, tuple[str, ...]] = {
    "variant": VARIANTS,
    "tiny_model_size": ("nano", "micro", "small"),
    "env": ("toy", "math", "qa"),
    "on_judge_failure": ("drop", "outcome_only", "stop"),
    "revise": ("all", "failed"),
    "rollout_backend": ("hf", "vllm"),
    "truncated": ("keep", "mask", "penalise"),
    "advantage": ("grpo", "dr_grpo"),
    "loss_agg": ("token-mean", "seq-mean-token-mean"),
    "schedule": ("constant", "cosine"),
    "device": ("auto", "cpu", "cuda"),
    "process_reward": ("none", "prm"),
    "prm_reward": ("promise", "progress"),
}


def check_choices(config: object, choices: dict[str, tuple[str, ...]]) -> None:
    """Raise ``ValueError`` naming the field, its value and the valid choices."""
    for name, valid in choices.items():
        value = getattr(config, name)
        if value not in valid:
            raise ValueError(f"{type(config).__name__}.{name}={value!r} is not valid; "
                             f"choose one of: {', '.join(valid)}")


@dataclass
class TrainConfig:
    # what to train
    variant: str = cfg("grpo", help="grpo (outcome reward) | reagent-r (outcome + lambda*judge) | "
                       "reagent-u (reagent-r over initial and critique-revised rollouts, one pooled group)")
    model: str = cfg("runs/tiny-policy", help="policy model directory; created as a tiny model if missing "
                     "and create_missing_model is true")
    create_missing_model: bool = cfg(True, help="build an untrained tiny model at `model` when it does not "
                                     "exist (smoke runs); set false for real runs")
    tiny_model_size: str = cfg("micro", help="size of a created tiny model: nano | micro | small")
    output_dir: str = cfg("runs/grpo", help="where checkpoints, metrics.jsonl and rollouts go")
    env: str = cfg("toy", help="environment: toy | math | qa")
    env_seed: int = cfg(0, help="seed of the toy task generator")
    benchmark: str | None = cfg(None, help="benchmark for the math/qa environments")
    train_data: str | None = cfg(None, help="training file in the benchmark's format (math/qa envs)")
    train_tasks: int = cfg(2000, help="number of training tasks drawn from the environment")
    tools: list[str] | None = cfg(None, help="tools the environment offers (null: its defaults; [] none: a "
                                  "single-turn, tool-free task with no tool schema in the prompt; e.g. "
                                  "[python] for math, [lookup, calc] for toy)")
    # judge
    judge_model: str | None = cfg(None, help="local judge model directory (reagent-r/u); 'rules' = the "
                                   "toy task's rules checker as an oracle judge (env=toy)")
    judge_base_url: str | None = cfg(None, help="OpenAI-compatible judge endpoint, e.g. http://127.0.0.1:8001/v1")
    judge_served_model: str | None = cfg(None, help="model name at judge_base_url (default: the first served)")
    judge_max_new_tokens: int = cfg(256, help="token limit of one judgment")
    judge_timeout_s: float = cfg(120.0, help="judge_base_url: seconds per request, end to end "
                                 "(a server dripping its answer is cut off)")
    judge_max_retries: int = cfg(3, help="judge_base_url: retries of a failed request, with backoff")
    judge_concurrency: int = cfg(64, help="judge_base_url: requests in flight; episodes are sent "
                                          "as they finish, overlapping the rollout")
    judge_batch_size: int = cfg(64, help="local judge generation batch")
    judge_chat_template_kwargs: dict = judge_chat_template_kwargs_field()
    judge_lambda: float = cfg(0.3, help="lambda: reward = outcome + lambda * judge score")
    on_judge_failure: str = cfg("outcome_only", help="drop | outcome_only | stop when the judge cannot score")
    revise: str = cfg("all", help="reagent-u: revise 'all' G initial rollouts or only 'failed' ones")
    # process reward (AgentPRM step rewards as token advantages, reagent/train/process_reward.py)
    process_reward: str = cfg("none", help="none | prm: add the PRM's per-step advantages to the outcome "
                              "advantage of each step's tokens (needs prm_model)")
    prm_model: str | None = cfg(None, help="process_reward=prm: trained PRM directory (reagent train-prm's "
                                "out/final), loaded locally on `device`")
    prm_reward: str = cfg("promise", help="process_reward=prm: promise (step value Q_k) | progress "
                          "(Q_k - Q_{k-1}, Q_{-1} = the group's mean first-step value)")
    process_reward_coef: float = cfg(1.0, help="alpha: token advantage = outcome advantage + alpha * "
                                     "group-normalised process reward of the token's step")
    outcome_weight: float = cfg(1.0, help="w: R = w * outcome (+ lambda * judge score); 0 = no outcome reward, "
                                "e.g. InversePRM, where the PRM's step rewards are the only signal (then needs "
                                "process_reward=prm with keep_degenerate_groups=true, or a judge variant)")
    # rollout
    prompts_per_step: int = cfg(8, help="prompts (groups) per step")
    group_size: int = cfg(8, help="G: rollouts per prompt")
    max_turns: int = cfg(6, help="assistant turns per episode")
    max_tokens: int = cfg(512, help="response token budget per episode")
    max_new_tokens: int = cfg(128, help="tokens per assistant turn")
    temperature: float = cfg(1.0, help="rollout sampling temperature")
    top_p: float = cfg(1.0, help="rollout nucleus mass")
    chat_template_kwargs: dict = chat_template_kwargs_field()
    tool_format: str = tool_format_field()
    rollout_backend: str = cfg("hf", help="hf | vllm (GPU; weights synced after every update)")
    truncated: str = cfg("keep", help="truncated episodes: keep | mask (no loss) | penalise")
    truncation_penalty: float = cfg(0.0, help="reward given to truncated episodes under truncated=penalise")
    # GRPO
    advantage: str = cfg("grpo", help="grpo (divide by group std) | dr_grpo (no std)")
    keep_degenerate_groups: bool = cfg(False, help="keep groups whose rewards are all equal (else dropped)")
    clip_low: float = cfg(0.2, help="PPO ratio clip below 1")
    clip_high: float = cfg(0.28, help="PPO ratio clip above 1 (clip-higher)")
    loss_agg: str = cfg("token-mean", help="token-mean | seq-mean-token-mean")
    kl_coef: float = cfg(0.0, help="k3 KL to the reference model; 0 loads no reference model")
    entropy_coef: float = cfg(0.0, help="entropy bonus coefficient")
    updates_per_batch: int = cfg(1, help="mu: optimizer steps on each batch of rollouts")
    micro_batch_size: int = cfg(16, help="trajectories per forward/backward (gradient accumulation)")
    share_prompt: bool = cfg(True, help="update: run each group's shared prompt once, its responses "
                             "packed after it with a block attention mask (same log-probs, ~2x fewer "
                             "tokens on short single-turn tasks; reagent.train.prefix_pack). Needs sdpa "
                             "or eager attention (else padded rows are used); the mask is T^2 per group "
                             "(T = prompt + all responses), bounded by share_prompt_max_tokens")
    share_prompt_max_tokens: int = cfg(4096, help="longest packed row of share_prompt (tokens): a group "
                                       "whose packed row would be longer is split into several rows, "
                                       "so the T^2 mask stays bounded (4096: 64 MB in float32)")
    lr: float = cfg(1e-5, help="AdamW learning rate")
    weight_decay: float = cfg(0.0, help="AdamW weight decay")
    max_grad_norm: float = cfg(1.0, help="gradient clipping")
    warmup_steps: int = cfg(0, help="linear warm-up optimizer steps")
    schedule: str = cfg("constant", help="constant | cosine after warm-up")
    gradient_checkpointing: bool = cfg(False, help="trade compute for memory on large models")
    bf16: bool = cfg(True, help="bf16 mixed precision on GPU (ignored on CPU)")
    # run
    max_steps: int = cfg(50, help="training steps")
    save_every: int = cfg(10, help="checkpoint every N steps (and at the end)")
    keep_checkpoints: int = cfg(2, help="complete checkpoints kept on disk")
    save_rollouts: bool = cfg(False, help="write each step's rollouts with judge outputs for audit")
    seed: int = cfg(0, help="seed for data order and sampling")
    device: str = cfg("auto", help="auto | cpu | cuda")
    resume: bool = cfg(False, help="continue from the last complete checkpoint in output_dir")
    report_to: list = report_to_field()

    def __post_init__(self):
        check_choices(self, CHOICES)
        check_template_options(self, "chat_template_kwargs", "judge_chat_template_kwargs")
        self.report_to = validate_report_to(self.report_to)
        checks = [
            (self.group_size >= 2, f"group_size={self.group_size}: GRPO needs at least 2 rollouts per prompt"),
            (self.updates_per_batch >= 1, f"updates_per_batch={self.updates_per_batch} must be >= 1"),
            (self.judge_timeout_s > 0, f"judge_timeout_s={self.judge_timeout_s} must be > 0"),
            (self.judge_max_retries >= 0, f"judge_max_retries={self.judge_max_retries} must be >= 0"),
            (self.judge_concurrency >= 1, f"judge_concurrency={self.judge_concurrency} must be >= 1"),
            (self.micro_batch_size >= 1, f"micro_batch_size={self.micro_batch_size} must be >= 1"),
            (self.share_prompt_max_tokens >= 1,
             f"share_prompt_max_tokens={self.share_prompt_max_tokens} must be >= 1"),
            (self.prompts_per_step >= 1, f"prompts_per_step={self.prompts_per_step} must be >= 1"),
            (self.temperature > 0, f"temperature={self.temperature}: GRPO samples; use a temperature > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        if self.tools is not None:
            from reagent.envs import offerable_tools

            valid = offerable_tools(self.env)
            if not isinstance(self.tools, list) or any(t not in valid for t in self.tools):
                raise ValueError(f"tools={self.tools!r} is not valid for env={self.env}: a list of "
                                 f"{', '.join(valid)} (or [] for none)")
        if self.process_reward == "prm" and not self.prm_model:
            raise ValueError("process_reward=prm needs prm_model=DIR (a trained PRM: reagent train-prm's "
                             "out/final)")
        if self.outcome_weight < 0:
            raise ValueError(f"outcome_weight={self.outcome_weight} must be >= 0")
        if self.outcome_weight == 0 and not self.uses_judge and not (self.process_reward == "prm"
                                                                     and self.keep_degenerate_groups):
            raise ValueError(f"outcome_weight=0 with variant={self.variant} leaves the PRM's step rewards as the "
                             f"only signal: set process_reward=prm (got {self.process_reward!r}) and "
                             f"keep_degenerate_groups=true (got {self.keep_degenerate_groups}; every group's "
                             "reward is then 0, so none would be kept)")
        if self.judge_model == "rules" and self.env != "toy":
            raise ValueError(f"judge_model=rules is the toy task's rules checker; env={self.env!r} "
                             "needs a judge model or endpoint")
        if self.uses_judge and not (self.judge_model or self.judge_base_url):
            raise ValueError(f"variant={self.variant} needs a judge: set judge_model=DIR or "
                             "judge_base_url=URL (or use variant=grpo)")

    @property
    def uses_judge(self) -> bool:
        return self.variant in ("reagent-r", "reagent-u")
