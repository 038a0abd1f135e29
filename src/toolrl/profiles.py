"""Profiles: named sets of params overrides (`configs/<name>.yaml`), applied as `dvc exp run -S`.

A profile is a partial params.yaml (`configs/smoke.yaml`: tiny model, few examples, few steps), or
one that adds to another (`extends: full` in configs/grid.yaml: the full profile's settings, then its own). It
is applied the way DVC sees params change: flattened into `key.sub=value` overrides, the syntax of
`dvc exp run -S`, `toolrl ... --set` and `load_params(overrides=...)`. So a profile run is a DVC
experiment whose params.yaml holds the profile's values, and DVC reruns exactly the stages whose
sections the profile touches. `default` is the empty profile: params.yaml as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolrl import dicts
from toolrl.config import ConfigError, apply_overrides, load_raw, parse_override, validate

PROFILES_DIR = Path("configs")
DEFAULT_PROFILE = "default"
EXTENDS = "extends"  # a profile's key naming the profile it adds to (configs/grid.yaml: `extends: full`)


def profile_path(name: str, root: str | Path = ".") -> Path:
    return Path(root) / PROFILES_DIR / f"{name}.yaml"


def available(root: str | Path = ".") -> list[str]:
    folder = Path(root) / PROFILES_DIR
    found = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return [DEFAULT_PROFILE, *[n for n in found if n != DEFAULT_PROFILE]]


def load_profile(name: str, root: str | Path = ".") -> dict[str, Any]:
    """The profile's partial params tree; `default` is empty."""
    if name == DEFAULT_PROFILE:
        return {}
    path = profile_path(name, root)
    if not path.exists():
        raise ConfigError(
            f"profile {name!r} not found ({path}): choose one of {', '.join(available(root))} "
            f"or write {path} as a partial params.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} must be a mapping of params sections (model, data, ...)")
    return data


def format_value(value: Any) -> str:
    """A value as `-S` needs it: one line that YAML (toolrl) and Hydra's grammar (DVC) read alike.

    YAML flow style does both: `tiny-random`, `1.0e-05`, `null`, `[a, b]`, `[{name: bfcl, limit: 8}]`
    (JSON would not: Hydra refuses quoted dict keys).
    """
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=100_000).strip()
    return text.removesuffix("...").strip()


def leaves(tree: dict[str, Any]) -> dict[str, Any]:
    """{"grpo": {"reward": {"variant": "coarse"}}} -> {"grpo.reward.variant": "coarse"}.

    Mappings are walked down to their leaves (`dicts.flatten`); lists (e.g. `data.sources`) and an
    empty mapping are set whole, as DVC does with such a value.
    """
    return dicts.flatten(tree, sep=".", keep_empty=True)


def as_overrides(settings: dict[str, Any]) -> list[str]:
    """{"grpo.reward.variant": "coarse"} -> ["grpo.reward.variant=coarse"]."""
    return [f"{path}={format_value(value)}" for path, value in settings.items()]


def profile_leaves(name: str, root: str | Path = ".", chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The profile's settings as `leaves`, after those of the profile it names in `extends:` (its own win)."""
    tree = load_profile(name, root)
    base = tree.pop(EXTENDS, None)
    out: dict[str, Any] = {}
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"profile {name}: `{EXTENDS}` takes the name of another profile in configs/, got {base!r}")
        if base in (*chain, name):
            raise ConfigError(f"profile {name} extends {base}, which extends {name} again: "
                              f"{' -> '.join((*chain, name, base))}; remove one `{EXTENDS}`")
        out = profile_leaves(base, root, (*chain, name))
    out.update(leaves(tree))
    return out


def profile_overrides(name: str, root: str | Path = ".", params_file: str | Path = "params.yaml") -> list[str]:
    """The profile as `-S` overrides, validated against params.yaml so a typo fails here."""
    overrides = as_overrides(profile_leaves(name, root))
    check(Path(root) / params_file, overrides, source=f"profile {name}")
    return overrides


def check(params_file: str | Path, overrides: list[str], source: str = "overrides") -> None:
    """Raise ConfigError, naming the key, if params_file + overrides is not a valid params tree."""
    validate(apply_overrides(load_raw(params_file), overrides), source=f"{params_file} + {source}")


def compose(profile: str = DEFAULT_PROFILE, overrides: list[str] | None = None, root: str | Path = ".",
            params_file: str | Path = "params.yaml") -> list[str]:
    """Profile overrides followed by explicit ones (later ones win), checked as a whole."""
    combined = [*profile_overrides(profile, root, params_file), *(overrides or [])]
    check(Path(root) / params_file, combined, source=f"profile {profile} + overrides")
    return combined


def dvc_set_args(overrides: list[str], params_file: str | Path = "params.yaml") -> list[str]:
    """`-S` arguments for `dvc exp run`: a key absent from params.yaml, or a mapping value, gets Hydra's
    `++` (add or set), since DVC (Hydra's struct mode) refuses to set a key the file does not have: an
    entry of `grpo.reward.weights`, or `evaluate.limit_per_benchmark={api_bank: null}` over `{}`."""
    raw = load_raw(params_file)
    args: list[str] = []
    for text in overrides:
        path, value = parse_override(text)
        node: Any = raw
        present = True
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                present = False
                break
        args.append(text if present and not isinstance(value, dict) or text.startswith(("+", "~"))
                    else f"++{text}")
    return args
