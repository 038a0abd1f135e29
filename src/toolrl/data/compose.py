"""Composed multi-call examples: two kept single-call training examples become one two-call example.

The curated BFCL live mix holds few examples with two or more calls (16 of 346 training examples),
and every trained model scores 0 on BFCL `parallel` and `parallel_multiple`: it makes one call where
two are asked for. `data.compose_multi_call` adds that many examples built from pairs:

- `parallel`: the same function (same name, same schema) twice, with different arguments;
- `parallel_multiple`: two different functions.

A composed example offers the union of both tool lists (a pair whose lists hold two different tools
under one name is skipped), asks both requests in one user message ("A", a blank line, "Also: B")
and targets both calls in that order. Only train-split examples are paired, and composed examples
join the train split only: pairing across splits would put val / test requests into training.

Pairs are chosen from the seed, never from the input order: candidates are ranked by a hash of
(`data.seed`, id), and each in turn takes the first later-ranked unused candidate that makes a pair
of the kind wanted (and fits the prompt budget, when the caller gives one); an example joins at most
one composed example of each kind. Validation, rendering and the prompt-token cap are the caller's
(the curate stage runs the same ones as for upstream examples, quarantining what fails).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from toolrl.config import DataParams
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool
from toolrl.data.split import rank

SOURCE = "composed"  # the composed examples' `source`: their own row in the card's per-source table
PARALLEL, PARALLEL_MULTIPLE = "parallel", "parallel_multiple"
KINDS = (PARALLEL, PARALLEL_MULTIPLE)
JOIN = "\n\nAlso: "

Fits = Callable[[CanonicalExample, CanonicalExample], bool]


def candidate(ex: CanonicalExample) -> bool:
    """One user request answered by exactly one call (and no text, which two requests would have to
    share): what can be joined with another such example without rewriting either."""
    return (len(ex.conversation) == 1 and ex.conversation[0].role == "user"
            and len(ex.target.calls) == 1 and not ex.target.response)


def merged_tools(a: CanonicalExample, b: CanonicalExample) -> list[Tool] | None:
    """a's tools, then b's that a lacks; None when both offer a tool of one name with other schemas
    (the model could not tell which one a call means)."""
    by_name = {t.name: t for t in a.tools}
    out = list(a.tools)
    for tool in b.tools:
        seen = by_name.get(tool.name)
        if seen is None:
            by_name[tool.name] = tool
            out.append(tool)
        elif seen != tool:
            return None
    return out


def kind_of(a: CanonicalExample, b: CanonicalExample) -> str | None:
    """The kind a pair makes, or None for the same call twice (nothing new to learn)."""
    ca, cb = a.target.calls[0], b.target.calls[0]
    if ca.name != cb.name:
        return PARALLEL_MULTIPLE
    return None if ca.arguments == cb.arguments else PARALLEL  # same schema: merged_tools checks it


def build(a: CanonicalExample, b: CanonicalExample, kind: str, tools: list[Tool]) -> CanonicalExample:
    ta, tb = a.target.thought, b.target.thought
    # one part's reasoning alone would speak for half of the target: then the placeholder thought
    thought = f"{ta} {tb}" if ta and tb else None
    parts: list[dict[str, Any]] = [{"id": e.id, "source": e.source, "provenance": e.provenance} for e in (a, b)]
    return CanonicalExample(
        id=f"{SOURCE}:{a.id}+{b.id}", source=SOURCE, tools=tools,
        conversation=[Message(role="user", content=a.conversation[0].content + JOIN + b.conversation[0].content)],
        target=Target(thought=thought, calls=[a.target.calls[0], b.target.calls[0]]),
        provenance={"composed": kind, "parts": parts},
    )


def pick(candidates: list[CanonicalExample], kind: str, want: int, seed: int,
         fits: Fits | None = None) -> list[CanonicalExample]:
    """Up to `want` composed examples of `kind`, from disjoint pairs chosen by the seed's ranking."""
    ranked = sorted(candidates, key=lambda e: rank(seed, e.id))
    pools: dict[str, list[CanonicalExample]] = defaultdict(list)  # parallel: same function only
    for ex in ranked:
        pools[ex.target.calls[0].name if kind == PARALLEL else ""].append(ex)
    position = {ex.id: i for pool in pools.values() for i, ex in enumerate(pool)}
    used: set[str] = set()
    out: list[CanonicalExample] = []
    for a in ranked:
        if len(out) >= want:
            break
        if a.id in used:
            continue
        pool = pools[a.target.calls[0].name if kind == PARALLEL else ""]
        for j in range(position[a.id] + 1, len(pool)):  # later-ranked only: earlier ones found no pair
            b = pool[j]
            if b.id in used or kind_of(a, b) != kind or (fits is not None and not fits(a, b)):
                continue
            tools = merged_tools(a, b)
            if tools is None:
                continue
            out.append(build(a, b, kind, tools))
            used |= {a.id, b.id}
            break
    return out


def compose(train: list[CanonicalExample], data: DataParams, fits: Fits | None = None) -> list[CanonicalExample]:
    """`data.compose_multi_call` composed examples (fewer when pairs run out) from the train-split
    examples `train`: `data.compose_parallel_share` of them parallel, the rest parallel_multiple."""
    want = data.compose_multi_call
    if want <= 0:
        return []
    candidates = [e for e in train if candidate(e)]
    wanted_parallel = round(want * data.compose_parallel_share)
    parallel = pick(candidates, PARALLEL, wanted_parallel, data.seed, fits)
    multiple = pick(candidates, PARALLEL_MULTIPLE, want - len(parallel), data.seed, fits)
    if len(parallel) + len(multiple) < want:  # too few parallel_multiple pairs: more parallel ones
        parallel = pick(candidates, PARALLEL, want - len(multiple), data.seed, fits)
    return parallel + multiple


def sample_pair() -> tuple[CanonicalExample, CanonicalExample, CanonicalExample]:
    """Two one-tool examples and their composition: what the curate stage measures to estimate a
    composed prompt's length from its parts' lengths."""
    def one(name: str) -> CanonicalExample:
        return CanonicalExample(id=name, source="", tools=[Tool(name=name)], target=Target(calls=[Call(name=name)]),
                                conversation=[Message(role="user", content=f"request {name}")])

    a, b = one("f"), one("g")
    return a, b, build(a, b, PARALLEL_MULTIPLE, a.tools + b.tools)


def summary(asked: int, built: list[CanonicalExample], kept: set[str]) -> dict[str, int]:
    """The card's and stats.json's counts: asked for, built (per kind), kept, quarantined."""
    out = {"asked": asked, "built": len(built)}
    for kind in KINDS:
        out[kind] = sum(1 for e in built if e.provenance["composed"] == kind)
    out["kept"] = sum(1 for e in built if e.id in kept)
    out["quarantined"] = len(built) - out["kept"]
    return out
