"""Write params.yaml from the schema (`toolrl.config.Params`, sections in `toolrl.schema`): every key, its value, and its comment.

params.yaml is the one file DVC reads for stage params, so it must list every key (DVC only tracks
keys that are present). Rather than keep it complete by hand while stages add fields, it is rendered
from the pydantic schema: values come from an existing params file (so edits survive a regeneration)
or from the defaults, and comments are the fields' help (`Field(description=...)`, pydantic's
`model_fields[name].description`), so the help lives with the field and nothing reads source text. `make params` regenerates it; a test checks it matches the schema's defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from toolrl import config
from toolrl.config import Params, load_raw, validate

HEADER = """\
# params.yaml: every parameter of every stage, one section per stage (validated by toolrl.config).
# Rendered from the schema's defaults by `make params` (`python -m toolrl.params_file [--keep]`;
# --keep keeps the values here and only adds new keys): add keys in src/toolrl/schema/<section>.py.
# DVC tracks each stage's own section (dvc.yaml `params:`), so changing `grpo.*` never reruns `sft`.
# Profiles (configs/<name>.yaml) override a few keys: `toolrl params profile smoke` prints them as
# `dvc exp run -S` overrides; see docs/ORCHESTRATION.md.
"""

SECTION_TITLES = {
    "model": "base model: prepare_model stage -> models/base",
    "data": "data curation: curate stage -> data/curated",
    "sft": "supervised fine-tuning baseline: sft stage -> models/sft",
    "grpo": "GRPO with the ToolRL reward: grpo stage -> models/grpo",
    "trm": "tool-call reward model: trm_data, trm and grpo_trm stages",
    "seeds": "more training seeds of grpo and grpo_trm: grpo_seed@<s> and grpo_trm_seed@<s> stages -> models/seeds",
    "grid": "the reward-variant grid: grpo trained with other rewards, grpo_variant@<name> stages -> models/grid",
    "evaluate": "evaluation: evaluate stage -> reports/",
    "multi_turn": "BFCL multi-turn scenarios: the train / evaluation split (curate and evaluate stages)",
    "tracking": "MLflow tracking (no stage depends on it: changing it reruns nothing)",
}


def field_comment(cls: type[BaseModel], name: str) -> str:
    """The help of field `name`: its `Field(description=...)`, or, where a subclass only changes the
    default (`SftParams.output_dir`), the description the parent class gives it."""
    for klass in cls.__mro__:
        if isinstance(klass, type) and issubclass(klass, BaseModel) and name in klass.model_fields:
            text = klass.model_fields[name].description
            if text:
                return text
    return ""


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _render(model: BaseModel, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    cls = type(model)
    for name in cls.model_fields:
        value = getattr(model, name)
        comment = field_comment(cls, name)
        suffix = f"  # {comment}" if comment else ""
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:{suffix}")
            _render(value, indent + 1, out)
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            out.append(f"{pad}{name}:{suffix}")
            for item in value:
                dumped = yaml.safe_dump([item.model_dump(mode="json")], sort_keys=False, width=10_000)
                out.extend(f"{pad}  {line}" for line in dumped.rstrip().splitlines())
        else:
            out.append(f"{pad}{name}: {_scalar(value)}{suffix}")


def render(params: Params) -> str:
    """params.yaml text for these params: every key, with the schema's comments."""
    out: list[str] = [HEADER.rstrip("\n")]
    for section in Params.model_fields:
        out.append("")
        title = SECTION_TITLES.get(section)
        if title:
            out.append(f"# ---- {title}")
        out.append(f"{section}:")
        _render(getattr(params, section), 1, out)
    return "\n".join(out) + "\n"


def prune_unknown(raw: Any, model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """Remove, in place, keys the schema does not have (a field renamed or removed in the schema);
    returns their paths so the caller can say what was dropped."""
    removed: list[str] = []
    if not isinstance(raw, dict):
        return removed
    for key in list(raw):
        field = model.model_fields.get(key)
        if field is None:
            removed.append(prefix + key)
            del raw[key]
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            removed += prune_unknown(raw[key], ann, f"{prefix}{key}.")
    return removed


def regenerate(path: str | Path = "params.yaml") -> tuple[str, list[str]]:
    """The text of `path` re-rendered (its values kept, missing keys at their defaults) and the
    keys dropped because the schema no longer has them."""
    path = Path(path)
    if not path.exists():
        return render(Params()), []
    raw = load_raw(path)
    dropped = prune_unknown(raw)
    return render(validate(raw, source=str(path))), dropped


def main(argv: list[str] | None = None) -> int:
    """`python -m toolrl.params_file [--keep] [PATH]`: rewrite PATH (default params.yaml).

    By default every key is written at the schema's default (params.yaml is the default params);
    `--keep` keeps the values already in PATH and only adds missing keys and refreshes comments.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    keep = "--keep" in args
    args = [a for a in args if a != "--keep"]
    path = Path(args[0] if args else config.DEFAULT_PARAMS)
    if keep:
        text, dropped = regenerate(path)
        for key in dropped:
            print(f"dropped {key}: not a field of toolrl.config.Params any more", file=sys.stderr)
    else:
        text = render(Params())
    path.write_text(text)
    print(f"wrote {path} ({text.count(chr(10))} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
