"""Mismatched no-call examples: a train-split request offered its own example's other tools, not the one it calls.

The curated no-call examples come from BFCL *live* irrelevance: a request next to tools of another
domain. BFCL's non-live `irrelevance` category, where every trained model scores 0-8 %, pairs a
question with a function of the same topic that still cannot answer it (a question about an area
with a function for a perimeter). A model that learned "abstain when the tools are off-topic" calls
that function anyway. `data.mismatch_no_call` adds that many examples of BFCL's kind:

- the request of a kept train-split example answered by exactly one call (`compose.candidate`) that
  offers two or more tools;
- the tools offered are that example's own tools without the one it calls, and without any tool too
  like it (token-set Jaccard of name + description words at or above `SAME_TOOL`: another name for
  the same function would serve the request). The other tools of one example are mostly one API's
  other functions, so the topic stays; the dataset's own answer says none of them is the call;
- the target is a direct answer, one of `data.no_call_responses`.

The same request also trains with its tool (the call example it came from): the pair teaches the
difference, not a topic. A first version offered the most word-alike tool of *another* training
example; on BFCL live that tool could often serve the request (a `temperature` tool for "the current
temperature in Riga", `play_song` for "play Wrecking Ball"), so it was dropped. Requests are chosen by
a hash of (`data.seed`, id); only train-split examples are read and the mismatched ones join the train
split only. Validation, rendering and the prompt cap are the caller's, as for composed examples.
"""

from __future__ import annotations

import re

from toolrl.config import DataParams
from toolrl.data import base
from toolrl.data.compose import candidate
from toolrl.data.schema import CanonicalExample, Message, Target, Tool
from toolrl.data.split import rank

SOURCE = "mismatched"  # the examples' `source`: their own row in the card's per-source table
SAME_TOOL = 0.5  # a tool at least this like the called one (name + description words) may serve the request
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Words that say nothing about what a tool does: with them, `get_x` and `get_y` would look alike.
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "get", "give",
    "given", "how", "i", "in", "is", "it", "me", "my", "of", "on", "or", "please", "the", "this", "to",
    "what", "when", "which", "with", "you", "your",
})


def words(text: str) -> frozenset[str]:
    """Topic words of a text: snake_case and camelCase split, lower-cased, stop words dropped."""
    text = _CAMEL.sub(" ", text).replace("_", " ").replace(".", " ").lower()
    return frozenset(w for w in _WORD.findall(text) if w not in _STOP)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def tool_words(tool: Tool) -> frozenset[str]:
    return words(f"{tool.name} {tool.description}")


def other_tools(example: CanonicalExample) -> list[Tool]:
    """The example's tools that cannot serve its request: all but the called one and any too like it."""
    called = next(t for t in example.tools if t.name == example.target.calls[0].name)
    called_words = tool_words(called)
    return [t for t in example.tools
            if t.name != called.name and jaccard(tool_words(t), called_words) < SAME_TOOL]


def build(request: CanonicalExample, tools: list[Tool], data: DataParams) -> CanonicalExample:
    eid = f"{SOURCE}:{request.id}"
    called = request.target.calls[0].name
    return CanonicalExample(
        id=eid, source=SOURCE, tools=tools,
        conversation=[Message(role="user", content=request.conversation[0].content)],
        target=Target(response=base.no_call_response(data, eid)),
        provenance={"mismatched": {"request": request.id, "request_source": request.source, "removed": called,
                                   "left_out": len(request.tools) - len(tools) - 1},
                    "no_call": True},
    )


def mismatch(train: list[CanonicalExample], data: DataParams) -> list[CanonicalExample]:
    """`data.mismatch_no_call` mismatched no-call examples (fewer when requests run out) from the
    train-split examples `train`, requests in the seed's order."""
    want = data.mismatch_no_call
    out: list[CanonicalExample] = []
    for ex in sorted(train, key=lambda e: rank(data.seed, e.id)):
        if len(out) >= want:
            break
        if candidate(ex) and len(ex.tools) >= 2:
            tools = other_tools(ex)
            if tools:
                out.append(build(ex, tools, data))
    return out


def summary(asked: int, built: list[CanonicalExample], kept: set[str]) -> dict[str, int]:
    """The card's and stats.json's counts: asked for, built, kept, quarantined, and how many built ones
    also left out a tool too like the called one."""
    return {"asked": asked, "built": len(built), "kept": sum(1 for e in built if e.id in kept),
            "quarantined": sum(1 for e in built if e.id not in kept),
            "left_out_alike": sum(1 for e in built if e.provenance["mismatched"]["left_out"])}
