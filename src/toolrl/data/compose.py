"""Composed multi-call examples: kept single-call training examples joined into one multi-call example.

The curated BFCL live mix holds few examples with two or more calls (16 of 346 training examples),
and every trained model scores 0 on BFCL `parallel` and `parallel_multiple`: it makes one call where
two are asked for. `data.compose_multi_call` adds that many examples, each joining 2 to
`data.compose_max_calls` of them (BFCL's parallel answers hold 2-4 calls):

- `parallel`: the same function (same name, same schema) each time, with different arguments;
- `parallel_multiple`: a different function each time.

A composed example offers the union of its parts' tool lists (a group whose lists hold two different
tools under one name is not formed), asks all requests in one user message ("A", a blank line,
"Also: B", ...) and targets the calls in that order. Only train-split examples are joined, and composed
examples join the train split only: joining across splits would put val / test requests into training.

Groups are chosen from the seed, never from the input order: candidates are ranked by a hash of
(`data.seed`, id), and each in turn, aiming at 2, 3, ... `compose_max_calls` parts in rotation, takes
the first later-ranked unused candidates that keep the group of the kind wanted (and within the prompt
budget, when the caller gives one); a group that runs out of partners keeps the parts it found (at least
two). An example joins at most one composed example of each kind. Validation, rendering and the
prompt-token cap are the caller's (the curate stage runs the same ones as for upstream examples,
quarantining what fails).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from toolrl.config import DataParams
from toolrl.data.schema import Call, CanonicalExample, Message, Target, Tool
from toolrl.data.split import rank

SOURCE = "composed"  # the composed examples' `source`: their own row in the card's per-source table
PARALLEL, PARALLEL_MULTIPLE = "parallel", "parallel_multiple"
KINDS = (PARALLEL, PARALLEL_MULTIPLE)
JOIN = "\n\nAlso: "

Fits = Callable[[list[CanonicalExample]], bool]


def candidate(ex: CanonicalExample) -> bool:
    """One user request answered by exactly one call (and no text, which several requests would have to
    share): what can be joined with other such examples without rewriting any."""
    return (len(ex.conversation) == 1 and ex.conversation[0].role == "user"
            and len(ex.target.calls) == 1 and not ex.target.response)


def merged_tools(parts: list[CanonicalExample]) -> list[Tool] | None:
    """The first part's tools, then each later part's that are new; None when two parts offer a tool of
    one name with other schemas (the model could not tell which one a call means)."""
    by_name: dict[str, Tool] = {}
    out: list[Tool] = []
    for tool in (t for ex in parts for t in ex.tools):
        seen = by_name.get(tool.name)
        if seen is None:
            by_name[tool.name] = tool
            out.append(tool)
        elif seen != tool:
            return None
    return out


def joins(group: list[CanonicalExample], b: CanonicalExample, kind: str) -> bool:
    """Whether b's call keeps the group of `kind`: parallel, the group's function with arguments no
    part has (the same call twice teaches nothing new); parallel_multiple, a function no part calls."""
    cb = b.target.calls[0]
    calls = [ex.target.calls[0] for ex in group]
    if kind == PARALLEL:
        return all(c.name == cb.name and c.arguments != cb.arguments for c in calls)
    return all(c.name != cb.name for c in calls)


def build(parts: list[CanonicalExample], kind: str, tools: list[Tool]) -> CanonicalExample:
    thoughts = [ex.target.thought for ex in parts]
    # one part's reasoning alone would speak for part of the target: then the placeholder thought
    thought = " ".join(t for t in thoughts if t) if all(thoughts) else None
    return CanonicalExample(
        id=f"{SOURCE}:" + "+".join(ex.id for ex in parts), source=SOURCE, tools=tools,
        conversation=[Message(role="user", content=JOIN.join(ex.conversation[0].content for ex in parts))],
        target=Target(thought=thought, calls=[ex.target.calls[0] for ex in parts]),
        provenance={"composed": kind,
                    "parts": [{"id": e.id, "source": e.source, "provenance": e.provenance} for e in parts]},
    )


def pick(candidates: list[CanonicalExample], kind: str, want: int, seed: int, max_calls: int = 2,
         fits: Fits | None = None) -> list[CanonicalExample]:
    """Up to `want` composed examples of `kind` from disjoint groups chosen by the seed's ranking, the
    n-th aiming at 2 + n % (max_calls - 1) parts."""
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
        size = 2 + len(out) % (max_calls - 1)
        group, tools = [a], a.tools
        pool = pools[a.target.calls[0].name if kind == PARALLEL else ""]
        for j in range(position[a.id] + 1, len(pool)):  # later-ranked only: earlier ones found no group
            b = pool[j]
            if b.id in used or not joins(group, b, kind) or (fits is not None and not fits([*group, b])):
                continue
            merged = merged_tools([*group, b])
            if merged is None:
                continue
            group, tools = [*group, b], merged
            if len(group) == size:
                break
        if len(group) >= 2:
            out.append(build(group, kind, tools))
            used |= {ex.id for ex in group}
    return out


def compose(train: list[CanonicalExample], data: DataParams, fits: Fits | None = None) -> list[CanonicalExample]:
    """`data.compose_multi_call` composed examples (fewer when groups run out) from the train-split
    examples `train`: `data.compose_parallel_share` of them parallel, the rest parallel_multiple."""
    want = data.compose_multi_call
    if want <= 0:
        return []
    candidates = [e for e in train if candidate(e)]
    wanted_parallel = round(want * data.compose_parallel_share)
    k = data.compose_max_calls
    parallel = pick(candidates, PARALLEL, wanted_parallel, data.seed, k, fits)
    multiple = pick(candidates, PARALLEL_MULTIPLE, want - len(parallel), data.seed, k, fits)
    if len(parallel) + len(multiple) < want:  # too few parallel_multiple groups: more parallel ones
        parallel = pick(candidates, PARALLEL, want - len(multiple), data.seed, k, fits)
    return parallel + multiple


def sample_pair() -> tuple[CanonicalExample, CanonicalExample, CanonicalExample]:
    """Two one-tool examples and their composition: what the curate stage measures to estimate a
    composed prompt's length from its parts' lengths."""
    def one(name: str) -> CanonicalExample:
        return CanonicalExample(id=name, source="", tools=[Tool(name=name)], target=Target(calls=[Call(name=name)]),
                                conversation=[Message(role="user", content=f"request {name}")])

    a, b = one("f"), one("g")
    return a, b, build([a, b], PARALLEL_MULTIPLE, a.tools + b.tools)


def summary(asked: int, built: list[CanonicalExample], kept: set[str]) -> dict[str, int]:
    """The card's and stats.json's counts: asked for, built (per kind and per number of calls), kept,
    quarantined."""
    out = {"asked": asked, "built": len(built)}
    for kind in KINDS:
        out[kind] = sum(1 for e in built if e.provenance["composed"] == kind)
    for n in sorted({len(e.target.calls) for e in built}):
        out[f"calls_{n}"] = sum(1 for e in built if len(e.target.calls) == n)
    out["kept"] = sum(1 for e in built if e.id in kept)
    out["quarantined"] = len(built) - out["kept"]
    return out
