"""Real model families offline: the Qwen2.5, Qwen3 and Llama 3.1 tokenizers and chat templates.

Users train Qwen and Llama models, and their chat templates are where multi-turn agent
RL breaks (Qwen3 drops earlier ``<think>`` blocks, Llama 3.1 rewrites tool-call turns
and has no pad token). Tests must therefore run on the real vocabularies and templates,
with no model hub. The vocabularies ship in registry packages as tiktoken rank files:

- Qwen (2.5 and 3 share one byte-level BPE of 151,643 ranks):
  ``dashscope/resources/qwen.tiktoken``;
- Llama 3 / 3.1 (128,000 ranks): ``llama_models/llama3/tokenizer.model``.

:func:`build_family_tokenizer` turns a rank file into a transformers fast tokenizer: the
vocabulary is the byte-level spelling of each rank's bytes, the merges are derived from
the ranks (a token of rank ``r`` is the merge of two shorter tokens; merges are ordered
by ``r``, as tiktoken applies them), the pre-tokenizer is the family's published split
regex, and the special/added tokens get their published ids and flags. The chat
templates are the published ones, stored verbatim in ``reagent/assets/templates`` (see
PROVENANCE.md there). The packages are only *read* (``importlib.util.find_spec``), never
imported, so their own dependencies need not be installed.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from reagent.tiny_model import read_asset

# Qwen2's split regex (contractions, letters with one leading non-letter, single digits,
# punctuation runs, newlines, spaces); Llama 3's differs only in digits, which go in threes.
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
                  r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

_QWEN25_ADDED = [  # (content, special) from id 151643 on, as in Qwen2.5's tokenizer_config.json
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
    ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False),
    ("<|file_sep|>", False),
]
_QWEN3_ADDED = _QWEN25_ADDED + [  # ids 151665-151668
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
]


def _llama31_added() -> list[tuple[str, bool]]:
    named = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
             "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + 256 - len(named))]
    return [(t, True) for t in named + reserved]  # ids 128000-128255


@dataclass(frozen=True)
class Family:
    """One model family: where its vocabulary comes from and how its tokenizer is built."""

    name: str
    package: str  # registry package that ships the rank file (read, never imported)
    rank_file: str  # path inside the package
    n_ranks: int  # number of BPE ranks; added tokens start at this id
    pattern: str
    nfc: bool  # Qwen normalises to NFC; Llama 3 does not normalise
    added: tuple[tuple[str, bool], ...]
    bos: str | None
    eos: str
    pad: str | None  # None: the family has no pad token (Llama 3); see tokenization.pad_token_id
    template: str  # file under reagent/assets/templates
    architecture: str  # qwen2 | qwen3 | llama: the tiny model's transformers class
    extra_eos: tuple[str, ...] = field(default=())  # generation stops on these too


FAMILIES: dict[str, Family] = {
    "qwen2.5": Family("qwen2.5", "dashscope", "resources/qwen.tiktoken", 151643, QWEN_PATTERN,
                      True, tuple(_QWEN25_ADDED), None, "<|im_end|>", "<|endoftext|>",
                      "qwen2.5.jinja", "qwen2", ("<|endoftext|>",)),
    "qwen3": Family("qwen3", "dashscope", "resources/qwen.tiktoken", 151643, QWEN_PATTERN,
                    True, tuple(_QWEN3_ADDED), None, "<|im_end|>", "<|endoftext|>",
                    "qwen3.jinja", "qwen3", ("<|endoftext|>",)),
    "llama3.1": Family("llama3.1", "llama-models", "llama3/tokenizer.model", 128000,
                       LLAMA3_PATTERN, False, tuple(_llama31_added()), "<|begin_of_text|>",
                       "<|eot_id|>", None, "llama3.1.jinja", "llama",
                       ("<|end_of_text|>", "<|eom_id|>")),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown tokenizer family '{name}'; valid: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_template(name: str) -> str:
    """The published chat template of ``name``, as stored in ``reagent/assets/templates``."""
    return read_asset(f"templates/{get_family(name).template}")


def rank_file_path(family: Family) -> Path:
    """Where the installed registry package keeps the rank file; a clear error if it is absent."""
    module = family.package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / family.rank_file
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the {family.name} vocabulary ships in the '{family.package}' package "
        f"({module}/{family.rank_file}), which is not installed. Install it without its "
        f"dependencies (only the data file is read): pip install --no-deps {family.package}")


def family_available(name: str) -> bool:
    try:
        rank_file_path(get_family(name))
    except FileNotFoundError:
        return False
    return True


def read_ranks(path: Path) -> list[bytes]:
    """Token bytes in rank order from a tiktoken file (``base64 rank`` per line)."""
    tokens: list[bytes] = []
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        b64, rank = line.split()
        if int(rank) != len(tokens):
            raise ValueError(f"{path}:{lineno}: rank {rank} out of order (expected {len(tokens)})")
        tokens.append(base64.b64decode(b64))
    return tokens


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenizers use)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def vocab_and_merges(ranks: list[bytes]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocabulary and the BPE merges that reproduce tiktoken's rank order.

    Every multi-byte token of rank ``r`` is a merge of a split ``(left, right)`` whose two
    halves are tokens; all such splits are listed, ordered by ``r`` and then by the ranks
    of the halves, so the BPE model applies merges in the order tiktoken does.
    """
    table = _byte_to_unicode()
    rank_of = {tok: r for r, tok in enumerate(ranks)}
    vocab = {"".join(table[b] for b in tok): r for r, tok in enumerate(ranks)}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for r, tok in enumerate(ranks):
        for k in range(1, len(tok)):
            left, right = tok[:k], tok[k:]
            if left in rank_of and right in rank_of:
                merges.append((r, rank_of[left], rank_of[right], left, right))
    merges.sort()
    spell = lambda bs: "".join(table[b] for b in bs)  # noqa: E731
    return vocab, [(spell(a), spell(b)) for _, _, _, a, b in merges]


@functools.lru_cache(maxsize=4)
def _backend_json(name: str) -> str:
    """The ``tokenizers`` JSON of a family (built once per process; a few seconds)."""
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors)

    fam = get_family(name)
    ranks = read_ranks(rank_file_path(fam))
    if len(ranks) != fam.n_ranks:
        raise ValueError(f"{fam.name}: expected {fam.n_ranks} ranks, the file has {len(ranks)}")
    vocab, merges = vocab_and_merges(ranks)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False,
                               ignore_merges=True))
    if fam.nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(fam.pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    if fam.bos:  # Llama 3 prepends <|begin_of_text|> when special tokens are added
        tok.post_processor = processors.TemplateProcessing(
            single=f"{fam.bos} $A", pair=f"{fam.bos} $A {fam.bos} $B",
            special_tokens=[(fam.bos, fam.n_ranks)])
    for i, (content, special) in enumerate(fam.added):
        added = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False)
        got = tok.add_special_tokens([added]) if special else tok.add_tokens([added])
        if got != 1 or tok.token_to_id(content) != fam.n_ranks + i:
            raise ValueError(f"{fam.name}: {content} did not get id {fam.n_ranks + i}")
    return tok.to_str()


def build_family_tokenizer(name: str):
    """A ``PreTrainedTokenizerFast`` for ``name`` with its real ids, special tokens and template.

    Padding is on the left (batched generation appends on the right). Llama 3.1 keeps
    ``pad_token=None`` as published; every padding site uses
    :func:`reagent.tokenization.pad_token_id`.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fam = get_family(name)
    specials = [t for t, special in fam.added if special]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_backend_json(name)),
        bos_token=fam.bos, eos_token=fam.eos, pad_token=fam.pad, unk_token=None,
        additional_special_tokens=[t for t in specials if t not in (fam.bos, fam.eos, fam.pad)],
        model_max_length=131072, padding_side="left", clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = family_template(name)
    return tokenizer
