"""Editing one params section's schema module reruns only the stages that track that section.

In a throw-away git + DVC copy of the project, every stage's outputs are stand-ins recorded with
`dvc commit` (nothing trains), so `dvc status` reads what DVC would rerun from the deps alone.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml
from orchestration_repo import base_env, make_repo, run

DVC = [sys.executable, "-m", "dvc"]
FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".png", ".md")


def _resolve(path: str, params: dict) -> str:
    def lookup(match: re.Match) -> str:
        node = params
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", lookup, path)


def _stand_in_outputs(repo: Path, stages: dict, params: dict) -> None:
    for stage in stages.values():
        for entry in [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]:
            path = repo / _resolve(entry if isinstance(entry, str) else next(iter(entry)), params)
            if path.suffix in FILE_SUFFIXES:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n" if path.suffix == ".json" else "stand-in\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "stand-in.txt").write_text("stand-in\n")


def _stale(repo: Path, env: dict) -> set[str]:
    return set(json.loads(run([*DVC, "status", "--json"], repo, env).stdout or "{}"))


def test_a_change_to_the_grpo_schema_or_trainer_leaves_sft_cached(tmp_path):
    env = base_env(tmp_path / "prefect-home")
    repo = make_repo(tmp_path / "repo", env)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _stand_in_outputs(repo, stages, params)
    run([*DVC, "commit", "--force", "--quiet"], repo, env)
    assert _stale(repo, env) == set()

    module = repo / "src" / "toolrl" / "schema" / "grpo.py"
    module.write_text(module.read_text() + "\n# a comment in the grpo schema\n")
    stale = _stale(repo, env)
    assert "grpo" in stale and "sft" not in stale
    assert stale == {"grpo", "grpo_trm"}  # grpo_trm takes its budget and reward from the grpo section

    # The same for GRPO's own code: the shared-prefix trainer is no module of sft's, nor of evaluate's.
    trainer = repo / "src" / "toolrl" / "training" / "shared_prefix.py"
    trainer.write_text(trainer.read_text() + "\n# a comment in GRPO's trainer\n")
    assert _stale(repo, env) == {"grpo", "grpo_trm"}

    # The lean decode loop samples GRPO's rollouts, the TRM data, the evaluated completions and SFT's probe;
    # the TRM's shared prefix asks it which models it covers.
    loop = repo / "src" / "toolrl" / "decode.py"
    loop.write_text(loop.read_text() + "\n# a comment in the decode loop\n")
    assert _stale(repo, env) == {"sft", "grpo", "grpo_trm", "trm_data", "trm", "evaluate"}
