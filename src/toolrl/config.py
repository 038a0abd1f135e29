"""params.yaml: the one configuration file, one section per stage, validated with pydantic on load.

The schema of each section lives in its own module under `toolrl.schema` (`model`, `data`, `sft`,
`grpo`, `trm`, `seeds`, `evaluate`, `multi_turn`, `tracking`), so that a DVC stage depends on its own section's schema only
(dvc.yaml) and a change to one section's module reruns only the stages that read it. This module is
the root: it assembles `Params` from the sections, loads and overrides params files, and re-exports
every section class, so `from toolrl.config import GrpoParams` works as before.

Every model forbids unknown keys, so a typo fails with the key's path instead of being ignored.
Overrides use the `dvc exp run -S` syntax (`grpo.reward.variant=coarse`): the value is parsed as
YAML, so `sft.lora.enabled=true` is a bool and `grpo.lr=1e-6` a float.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from toolrl.schema.base import Section
from toolrl.schema.data import DataParams, SourceParams
from toolrl.schema.evaluate import BfclCategory, EvaluateParams, EvaluateVllmParams
from toolrl.schema.grid import GRID_STAGE, GridParams
from toolrl.schema.grpo import GrpoParams, RewardParams, VllmParams
from toolrl.schema.model import ModelParams
from toolrl.schema.multi_turn import MultiTurnParams
from toolrl.schema.seeds import SEEDED_STAGES, SeedsParams
from toolrl.schema.sft import SftParams
from toolrl.schema.tracking import TrackingParams
from toolrl.schema.training import LaunchParams, LoraParams, TrainCommon
from toolrl.schema.trm import (
    TRM_NEGATIVE_KINDS,
    GrpoTrmParams,
    JudgeParams,
    TrmDataParams,
    TrmModelParams,
    TrmParams,
)

__all__ = [
    "DEFAULT_PARAMS", "GRID_STAGE", "SEEDED_STAGES", "TRM_NEGATIVE_KINDS", "BfclCategory", "ConfigError", "DataParams", "EvaluateParams",
    "EvaluateVllmParams", "GridParams", "GrpoParams", "GrpoTrmParams", "JudgeParams", "LaunchParams", "LoraParams",
    "ModelParams", "MultiTurnParams", "Params", "RewardParams", "Section", "SeedsParams", "SftParams", "SourceParams",
    "TrackingParams",
    "TrainCommon", "TrmDataParams", "TrmModelParams", "TrmParams", "VllmParams", "apply_overrides",
    "load_params", "load_raw", "parse_override", "seed_arms", "validate",
]

DEFAULT_PARAMS = Path("params.yaml")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A params file or override that cannot be used; the message names the key and the fix."""


class Params(Section):
    model: ModelParams = Field(default_factory=ModelParams)
    data: DataParams = Field(default_factory=DataParams)
    sft: SftParams = Field(default_factory=SftParams)
    grpo: GrpoParams = Field(default_factory=GrpoParams)
    trm: TrmParams = Field(default_factory=TrmParams)
    seeds: SeedsParams = Field(default_factory=SeedsParams)
    grid: GridParams = Field(default_factory=GridParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    multi_turn: MultiTurnParams = Field(default_factory=MultiTurnParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)

    @model_validator(mode="after")
    def _prompts_fit_sft(self) -> Params:
        # Caught here, not after curation: SFT refuses examples whose prompt fills max_length.
        if self.data.max_prompt_tokens >= self.sft.max_length:
            raise ValueError(f"data.max_prompt_tokens ({self.data.max_prompt_tokens}) must be below sft.max_length "
                             f"({self.sft.max_length}), or SFT examples have no room for their completion: lower "
                             "the first or raise the second")
        composed = self.data.compose_max_prompt_tokens
        if composed is not None and composed >= self.sft.max_length:
            raise ValueError(f"data.compose_max_prompt_tokens ({composed}) must be below sft.max_length "
                             f"({self.sft.max_length}), or composed SFT examples have no room for their calls: "
                             "lower the first or raise the second")
        return self

    @model_validator(mode="after")
    def _seeds_join_evaluation(self) -> Params:
        # The seeds' models are evaluated beside the stages' and compared as methods; arms set by hand win.
        for stage in SEEDED_STAGES:
            if self.grpo.seed in self.seeds.of(stage):
                raise ValueError(f"seeds.{stage} lists {self.grpo.seed}, the seed of the {stage} stage's own model "
                                 "(grpo.seed): list other seeds")
        arms = seed_arms(self)
        if arms and not self.evaluate.arms:
            members = [m for ms in arms.values() for m in ms]
            models = [*self.evaluate.models, *[m for m in members if m not in self.evaluate.models]]
            self.evaluate = self.evaluate.model_copy(update={"models": models, "arms": arms})
        return self

    @model_validator(mode="after")
    def _grid_joins_evaluation(self) -> Params:
        # Each variant's model is evaluated beside the stages' (a checkpoint each: paired with the grpo stage's).
        if self.grpo.reward.variant in self.grid.variants:
            raise ValueError(f"grid.variants lists {self.grpo.reward.variant!r}, the grpo stage's own reward "
                             "(grpo.reward.variant): list other variants")
        extra = [f for f in map(self.grid.folder, self.grid.variants) if f not in self.evaluate.models]
        if extra:
            self.evaluate = self.evaluate.model_copy(update={"models": [*self.evaluate.models, *extra]})
        return self


def seed_arms(params: Params) -> dict[str, list[str]]:
    """The methods that `seeds` trains, as `evaluate.arms`: each seeded stage with its own model (where
    evaluate.models has it) and its seeds' folders, and the SFT they start from (held fixed) where it is
    evaluated. Empty when no seeds are listed."""
    arms: dict[str, list[str]] = {}
    for stage in SEEDED_STAGES:
        seeds = params.seeds.of(stage)
        if seeds:
            own = [stage] if stage in params.evaluate.models else []
            arms[stage] = [*own, *[params.seeds.folder(stage, s) for s in seeds]]
    if arms and "sft" in params.evaluate.models:
        arms = {"sft": ["sft"], **arms}
    return arms


# ---------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], parsed value); the value is YAML, as `dvc exp run -S` reads it."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} needs the form key.sub=value (e.g. grpo.max_steps=10)")
    key, _, raw = text.partition("=")
    # Hydra's `+key` / `++key` (add / add-or-override, as `dvc exp run -S` takes them) set the key here.
    path = [p for p in key.strip().lstrip("+").split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    # PyYAML follows YAML 1.1, where `1e-6` is a string; DVC (YAML 1.2) reads it as a float.
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return data


def _describe(err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    got = repr(err.get("input"))
    # A whole section as "input" (from a section-level check) would bury the message.
    if "input" in err and not isinstance(err["input"], dict) and len(got) <= 120:
        return f"{path}: {msg} (got {got})"
    return f"{path}: {msg}"


def _allowed_keys(loc: tuple, model: type[BaseModel] = Params) -> list[str]:
    """The keys allowed where an unknown key was found, walking the schema along `loc`."""
    cls = model
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if isinstance(part, str) else None
        ann = field.annotation if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cls = ann
        else:
            return []
    return sorted(cls.model_fields)


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line = _describe(err)
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(tuple(err["loc"]))
                if allowed:
                    line += f"; allowed keys here: {', '.join(allowed)}"
            lines.append(line)
        raise ConfigError(f"{source} is invalid: " + "; ".join(lines)) from None


def load_raw(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {path} not found: run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, data, sft, ...)")
    return data


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Params:
    """Load, override and validate params.yaml."""
    raw = apply_overrides(load_raw(path), overrides or [])
    return validate(raw, source=str(path))
