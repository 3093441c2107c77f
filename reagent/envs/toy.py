"""The "ledger" toy environment: a tool-use task a tiny model can learn on a CPU in minutes.

Each task hides a ledger of a few accounts with random balances; the question asks
for one balance, the sum of two or three, or the difference of two. Balances are
reachable only through the ``lookup`` tool (so guessing fails) and ``calc`` does the
arithmetic. The answer goes in ``\\boxed{}`` and is checked exactly.

The task is built so that a *process* reward has something to add over the outcome:
some flaws change the answer (guessing, wrong arithmetic, a wrong account), others do
not (looking up an account the question does not mention, repeating a call, asking
for an account that does not exist, a malformed call, ``calc`` on a single number).
The demonstrator (:mod:`reagent.envs.toy_demos`) writes both kinds and the process
checker (:mod:`reagent.envs.toy_checker`) detects them.

Splits are disjoint by question text: a held-out question (its template and
accounts) never appears in training, and the ledger values differ per task anyway.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import random
from dataclasses import dataclass

from reagent.envs.base import last_boxed
from reagent.records import Task, Trajectory

ACCOUNTS = list("ABCDEFGHJKLMNPQR")
KINDS = ("single", "sum2", "sum3", "diff")
# Account names are quoted so they are the same token here as inside the tool call's JSON
# ("R" in both); a tiny model then only has to copy a token, not learn that " R" means "R".
TEMPLATES = {
    "single": 'What is the balance of account "{0}"?',
    "sum2": 'What is the total balance of accounts "{0}" and "{1}"?',
    "sum3": 'What is the total balance of accounts "{0}", "{1}" and "{2}"?',
    "diff": 'How much more money is in account "{0}" than in account "{1}"?',
}
# For a policy that can read instructions. The default ToyEnv sends no system turn: a
# tiny policy learns the protocol from the demonstrations, and these 25 tokens in every
# sequence made SFT 20% slower and delayed the step at which it learns to copy values.
INSTRUCTIONS = "Use lookup(account) for balances and calc(expr) for sums. Answer in \\boxed{}."
HELD_OUT_FRACTION = 0.2


def split_of(question: str) -> str:
    """Deterministic split by question text, so train and held-out never share a question."""
    h = int(hashlib.sha256(question.encode()).hexdigest()[:8], 16)
    return "heldout" if (h % 1000) < HELD_OUT_FRACTION * 1000 else "train"


def make_task(rng: random.Random, index: int, split: str) -> Task:
    """Draw tasks until one falls in ``split``; the ledger always holds the asked accounts."""
    while True:
        kind = rng.choice(KINDS)
        n_asked = {"single": 1, "sum2": 2, "sum3": 3, "diff": 2}[kind]
        names = rng.sample(ACCOUNTS, 5)
        asked = names[:n_asked]
        ledger = {name: rng.randint(1, 99) for name in sorted(names)}
        if kind == "diff" and ledger[asked[0]] == ledger[asked[1]]:
            continue
        if kind == "diff" and ledger[asked[0]] < ledger[asked[1]]:
            asked = [asked[1], asked[0]]
        question = TEMPLATES[kind].format(*asked)
        if split_of(question) != split:
            continue
        values = [ledger[a] for a in asked]
        answer = values[0] - values[1] if kind == "diff" else sum(values)
        return Task(id=f"toy-{split}-{index}", question=question, answer=str(answer), source="toy",
                    tools=["lookup", "calc"],
                    meta={"kind": kind, "asked": asked, "ledger": ledger, "split": split})


class LookupTool:
    name = "lookup"
    description = "Return the balance of one account in the ledger."
    parameters = {"type": "object", "properties": {"account": {"type": "string"}}, "required": ["account"]}

    def __init__(self, ledger: dict[str, int]):
        self.ledger = ledger

    def __call__(self, account: str) -> str:
        if account not in self.ledger:
            return f"Error: no account named {account}"
        return str(self.ledger[account])


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def safe_arith(expr: str) -> float:
    """Evaluate + - * / over numbers only; anything else raises ValueError."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError("only numbers and + - * / are allowed")

    if len(expr) > 200:
        raise ValueError("expression too long")
    try:
        return ev(ast.parse(expr, mode="eval"))
    except SyntaxError:
        raise ValueError("not an arithmetic expression") from None


class CalcTool:
    name = "calc"
    description = "Evaluate an arithmetic expression with + - * / and parentheses."
    parameters = {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}

    def __call__(self, expr: str) -> str:
        try:
            value = safe_arith(str(expr))
        except (ValueError, ZeroDivisionError) as e:
            return f"Error: {e}"
        return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def parse_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


@dataclass
class ToyEnv:
    """Ledger tasks; ``seed`` fixes the task stream of each split."""

    seed: int = 0
    name: str = "toy"
    tool_schemas_in_prompt: bool = False
    instructions: str = ""  # system turn; "" sends none (see INSTRUCTIONS)
    tool_names: tuple[str, ...] = ("lookup", "calc")  # offered tools (see reagent.envs.with_tools)

    def tasks(self, split: str, limit: int | None = None) -> list[Task]:
        if split not in ("train", "heldout"):
            raise ValueError(f"toy split must be 'train' or 'heldout', got '{split}'")
        rng = random.Random(f"{self.seed}-{split}")
        n = limit if limit is not None else (2000 if split == "train" else 200)
        return [make_task(rng, i, split) for i in range(n)]

    def system_prompt(self, task: Task) -> str:
        return self.instructions

    def tools_for(self, task: Task) -> dict:
        tools = {"lookup": LookupTool(task.meta["ledger"]), "calc": CalcTool()}
        return {n: tools[n] for n in self.tool_names}

    def extract_answer(self, text: str) -> str | None:
        return last_boxed(text)

    def outcome(self, task: Task, answer: str | None, trajectory: Trajectory | None = None) -> float:
        value = parse_number(answer)
        return 1.0 if value is not None and value == float(task.answer) else 0.0
