"""params.yaml `data`: the upstream sources and the curation (curate stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from toolrl.schema.base import Section

BFCL_SOURCES = ("bfcl", "bfcl_multi_turn")  # read from the installed bfcl_eval package, no location


class SourceParams(Section):
    """One upstream source in the mix (see docs/DATA.md)."""

    name: Literal["rlla", "toolace", "xlam", "hammer", "bfcl", "bfcl_multi_turn"]
    location: str | None = Field(default=None, description=(
        "Hub id, local file or folder (json / jsonl / parquet), or an http(s) URL; bfcl, bfcl_multi_turn: "
        "unused (the installed bfcl_eval package is the location)."))
    label: str | None = Field(default=None, description=(
        "Names this source in ids, strata and the data card; defaults to `name`. Give two entries of the "
        "same source different labels."))
    categories: list[str] = Field(default_factory=list, description=(
        "bfcl and bfcl_multi_turn only; empty: all live_* categories (bfcl), all four multi_turn_* ones "
        "(bfcl_multi_turn)"))
    split: str = Field(default="train", description="hub split")
    limit: int | None = Field(default=None, ge=1, description="upstream records to sample (None: all)")
    seed: int | None = Field(default=None, description="sampling and masking seed; None: data.seed")
    turns: Literal["all", "last"] = Field(default="all",
        description="Multi-turn sources (toolace): one example per assistant turn, or only the last one.")
    mask_tool_names: bool | None = Field(default=None, description=(
        "Hammer's function masking: tool names become random strings in tools, history and target. None: on "
        "for `hammer`, off for the others."))
    mask_param_names: bool = Field(default=False,
        description="also mask parameter names (Hammer's optional variant)")

    @property
    def tag(self) -> str:
        return self.label or self.name

    @model_validator(mode="after")
    def _location_where_needed(self) -> SourceParams:
        packaged = self.name in BFCL_SOURCES
        if not packaged and not self.location:
            raise ValueError(f"source {self.name!r} needs a location (hub id, local file/folder or URL)")
        if not packaged and self.categories:
            raise ValueError(f"categories apply to the bfcl sources only, not {self.name!r}")
        if self.name == "bfcl_multi_turn" and (self.mask_tool_names or self.mask_param_names):
            raise ValueError("bfcl_multi_turn cannot mask names: its calls run in BFCL's environments, "
                             "which know the real ones")
        return self


class DataParams(Section):
    sources: list[SourceParams] = Field(
        default_factory=lambda: [
            SourceParams(name="bfcl", categories=["live_simple", "live_multiple", "live_parallel",
                                                  "live_parallel_multiple", "live_irrelevance"]),
        ]
    )
    seed: int = 0
    max_prompt_tokens: int = Field(default=768, ge=64, description=(
        "Prompt length cap, counted with `tokenizer` on the chat-templated prompt. Below sft.max_length, so "
        "every SFT example has room for its completion; shorter prompts also make every CPU training step "
        "cheaper (a step's cost is mostly the prompt: ~550 of ~650 tokens on BFCL)."))
    tokenizer: str = Field(default="smollm2-135m-instruct",
        description="a model reference as in `model.name`, or a tokenizer folder")
    near_duplicate_threshold: float = Field(default=0.9, gt=0, le=1, description=(
        "Token-set Jaccard similarity (of conversation + target) at or above which two examples are "
        "near-duplicates; 1.0 keeps only exact-duplicate removal."))
    no_call_responses: list[str] = Field(
        default_factory=lambda: [
            "None of the available tools can help with this request.",
            "I can't do that with the tools I have: none of them fits this request.",
            "The tools available here don't cover this request, so I can't call any of them.",
            "No available function matches what you're asking for.",
            "This request is outside what the provided tools can do.",
        ],
        min_length=1,
        description=(
            "The direct answers of no-call examples whose source has none (irrelevance categories): each "
            "example gets one, chosen by a hash of its id. Several phrasings, so SFT does not learn one canned "
            "string that GRPO then collapses onto (docs/RESULTS.md, the first default run)."),
    )
    max_no_call_share: float | None = Field(default=0.25, gt=0, le=1, description=(
        "Largest share of no-call examples (no tool call in the target) in the curated set; the excess, "
        "chosen by a hash of (seed, id), is quarantined as `no_call_share_cap`. The BFCL live mix under the "
        "768-token cap is 53 % no-call, and a policy trained on that learns that abstaining is the safe "
        "answer (at 0.5, GRPO collapsed onto abstaining by step 51 of 100: docs/RESULTS.md). None: no cap."))
    compose_multi_call: int = Field(default=0, ge=0, description=(
        "How many multi-call training examples to compose from kept single-call training examples (pairs, "
        "or up to compose_max_calls; train split only; validated and length-capped like the others, source "
        "`composed`). The BFCL live "
        "mix has 16 multi-call examples of 346, and trained models score 0 on BFCL parallel and "
        "parallel_multiple. 0: off."))
    compose_max_calls: int = Field(default=2, ge=2, le=8, description=(
        "Most calls in a composed example: the composed examples join 2, 3, ... this many single-call "
        "examples in rotation (BFCL's parallel answers hold 2-4 calls). 2: pairs only."))
    compose_max_prompt_tokens: int | None = Field(default=None, ge=64, description=(
        "Prompt length cap of the composed examples (None: max_prompt_tokens). A composed prompt holds every "
        "part's request and tools: under the 768-token cap (~405 tokens of system prompt and template), three "
        "BFCL live parts rarely fit, so groups of 3-4 need more room."))
    compose_parallel_share: float = Field(default=0.5, ge=0, le=1, description=(
        "Share of the composed examples that call the same function twice with other arguments (BFCL "
        "`parallel` style); the rest call two different functions (`parallel_multiple` style). Either kind "
        "fills what the other lacks pairs for."))
    mismatch_no_call: int = Field(default=0, ge=0, description=(
        "How many no-call examples to build the way BFCL's non-live irrelevance is built (a request next to "
        "same-topic tools that cannot serve it): a kept single-call training request that offers two or more "
        "tools, offered them without the one it calls (and any too like it), answered directly (train split "
        "only; validated and length-capped like the others; source `mismatched`). The BFCL live irrelevance "
        "examples offer off-topic tools, and trained models abstain on those but not on BFCL's same-topic "
        "ones (docs/RESULTS.md). Added after the no-call share cap: lower data.max_no_call_share to keep the "
        "share. 50 at share 0.125 (the default's share): the default 40-step SFT fitted none of them and "
        "still called on BFCL's irrelevance cases (docs/RESULTS.md). 0: off."))
    split: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    output_dir: str = "data/curated"

    @model_validator(mode="after")
    def _no_call_responses_filled(self) -> DataParams:
        if any(not r.strip() for r in self.no_call_responses):
            raise ValueError("data.no_call_responses has an empty answer: give every entry some text")
        return self

    @model_validator(mode="after")
    def _split_sums_to_one(self) -> DataParams:
        if set(self.split) != {"train", "val", "test"}:
            raise ValueError("data.split needs exactly the keys train, val, test")
        if abs(sum(self.split.values()) - 1.0) > 1e-6:
            raise ValueError(f"data.split fractions must sum to 1, got {sum(self.split.values())}")
        if any(v < 0 for v in self.split.values()):
            raise ValueError("data.split fractions must not be negative")
        return self

    @model_validator(mode="after")
    def _labels_unique(self) -> DataParams:
        tags = [s.tag for s in self.sources]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"data.sources: {dup} appear more than once; give each entry its own `label`")
        if not self.sources:
            raise ValueError("data.sources is empty: list at least one source")
        for on, label, setting in ((self.compose_multi_call, "composed", "compose_multi_call"),
                                   (self.mismatch_no_call, "mismatched", "mismatch_no_call")):
            if on and label in tags:  # the generated examples' source label
                raise ValueError(f"data.sources: the label {label!r} names the {label} examples "
                                 f"(data.{setting}); give that source another `label`")
        return self
