"""The DVC pipeline on the smoke profile, in a throw-away git + DVC copy of the project.

`dvc repro` runs the whole DAG, a second `dvc repro` does nothing and says so; a `dvc exp run -S`
that changes one stage's section reruns that stage and what depends on it, nothing else; `dvc push`
to a local remote and `dvc pull` into an emptied cache restore every output.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from orchestration_repo import ROOT, base_env, make_repo, prefect_server, run

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
# One override per stage that touches only that stage's params section.
TOUCH = {  # the first whose stage exists is changed: trm reruns three stages and trains the least
    "trm": "trm.model.learning_rate=3.0e-05",
    "grpo": "grpo.reward.variant=coarse",
    "sft": "sft.seed=1",
    "evaluate": "evaluate.limit=1",
    "curate": "data.seed=1",
    "prepare_model": "model.seed=1",
}


def smoke_params_text(tmp: Path) -> str:
    """params.yaml with the smoke profile applied by DVC's own `-S` code (what `dvc exp run -S` does)."""
    from dvc.utils.hydra import apply_overrides

    from toolrl.profiles import dvc_set_args, profile_overrides

    target = tmp / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    apply_overrides(target, dvc_set_args(profile_overrides("smoke", ROOT), target))
    return target.read_text()


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def expand(stages: dict, params: dict) -> dict:
    """dvc.yaml's stages with each `foreach` stage written out as DVC names them (`grpo_seed@1`)."""
    out = {}
    for name, entry in stages.items():
        if "foreach" not in entry:
            out[name] = entry
            continue
        for item in _node(params, entry["foreach"].strip("${}")):
            text = yaml.safe_dump(entry["do"]).replace("${item}", str(item))
            out[f"{name}@{item}"] = yaml.safe_load(text)
    return out


def touched(override: str, stages: dict, params: dict) -> set[str]:
    """The stages an override must rerun: those tracking its params section, then, transitively,
    every stage whose deps lie under their outputs."""
    key = override.partition("=")[0]

    def resolve(path: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: _lookup(params, m.group(1)), path)

    def outs(name: str) -> list[str]:
        entries = [*stages[name].get("outs", []), *stages[name].get("metrics", []), *stages[name].get("plots", [])]
        return [resolve(e if isinstance(e, str) else next(iter(e))) for e in entries]

    found = {name for name, entry in stages.items()
             if any(key == p or key.startswith(p + ".") for p in entry.get("params") or [])}
    changed = True
    while changed:
        changed = False
        for name, entry in stages.items():
            if name in found:
                continue
            deps = [resolve(d) for d in entry.get("deps", [])]
            if any(d == o or d.startswith(o.rstrip("/") + "/") for f in found for o in outs(f) for d in deps):
                found.add(name)
                changed = True
    return found


def _node(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _lookup(tree: dict, dotted: str) -> str:
    return str(_node(tree, dotted))


def test_smoke_dag_reruns_nothing_when_unchanged_and_only_what_a_change_touches(tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    with prefect_server(home) as api_url:  # one server for every stage process, as after `make services`
        env = base_env(home)
        env["PREFECT_API_URL"] = api_url
        _smoke_dag(tmp_path, env)


def _smoke_dag(tmp_path, env):
    repo = make_repo(tmp_path / "repo", env, params_text=smoke_params_text(tmp_path))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    stages = expand(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"], params)
    assert "grpo_seed@1" in stages  # the smoke profile trains one more GRPO seed (params `seeds`)
    assert "grpo_variant@coarse" in stages  # and one reward variant (params `grid`)

    first = run([*DVC, "repro"], repo, env)
    assert ran(first.stdout) == set(stages), first.stdout[-3000:]

    second = run([*DVC, "repro"], repo, env)
    assert ran(second.stdout) == set(), second.stdout[-3000:]
    assert "Data and pipelines are up to date." in second.stdout
    assert run([*DVC, "status"], repo, env).stdout.strip() == "Data and pipelines are up to date."

    # `dvc plots show` renders the training curves from the per-step CSVs.
    plots = json.loads(run([*DVC, "plots", "show", "--json"], repo, env).stdout)["data"]
    for name, column in (("sft", "loss"), ("grpo", "reward")):
        if name in stages:
            values = plots[params[name]["plots_file"]][0]["content"]["data"]["values"]
            assert values and column in values[0], name

    # Commit the lock so the experiment starts from this state, then change one stage's section.
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "smoke outputs"], repo, env)
    stage = next(s for s in TOUCH if s in stages)
    third = run([*DVC, "exp", "run", "-n", "touch-one", "-S", TOUCH[stage]], repo, env)
    expected = touched(TOUCH[stage], stages, params)
    assert stage in expected and len(expected) < len(stages)
    assert ran(third.stdout) == expected, third.stdout[-3000:]
    assert "touch-one" in run([*DVC, "exp", "list", "--name-only"], repo, env).stdout.split()

    # A local remote restores every output into an emptied cache and workspace.
    remote = tmp_path / "remote"
    run([*DVC, "remote", "add", "-d", "local", str(remote)], repo, env)
    run([*DVC, "push"], repo, env)
    shutil.rmtree(repo / ".dvc" / "cache")
    for top in ("data", "models", "reports"):
        shutil.rmtree(repo / top, ignore_errors=True)
    run(["git", "checkout", "--", "models"], repo, env)  # git's file there (models/seeds/README.md, models/grid/README.md), as a clone has it
    run([*DVC, "pull"], repo, env)
    assert run([*DVC, "status"], repo, env).stdout.strip() == "Data and pipelines are up to date."
    assert (repo / params["model"]["output_dir"] / "config.json").exists()


def test_pipeline_reads_an_experiments_metrics_from_dvc(tmp_path):
    """What the pipeline flow logs on its parent run: a temp experiment's metrics (from DVC's cache,
    found by the experiment's git ref) and the workspace's."""
    from tasks.dvc import exp_rev, read_metrics

    env = base_env(tmp_path / "prefect-home")
    repo = tmp_path / "tiny"
    repo.mkdir()
    (repo / "write.py").write_text(
        "import json, yaml\np = yaml.safe_load(open('params.yaml'))\n"
        "json.dump({'acc': p['a']['x'] / 10, 'by': {'cat': 1}}, open('m.json', 'w'))\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": f"{sys.executable} write.py", "deps": ["write.py"], "params": ["a"], "metrics": ["m.json"]}}}))
    (repo / "params.yaml").write_text("a:\n  x: 3\n")
    run(["git", "init", "-q"], repo, env)
    run([*DVC, "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny"], repo, env)
    run([*DVC, "exp", "run", "--temp", "-n", "five", "-S", "a.x=5"], repo, env)
    run([*DVC, "exp", "run", "-n", "three"], repo, env)
    assert exp_rev(repo, "nope") is None
    assert read_metrics(repo, exp_rev(repo, "five")) == {"m.json": {"acc": 0.5, "by": {"cat": 1}}}
    assert read_metrics(repo) == {"m.json": {"acc": 0.3, "by": {"cat": 1}}}
