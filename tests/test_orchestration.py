"""Orchestration glue without servers: params.yaml, profiles (as toolrl and as DVC read them),
the dvc.yaml stage contract, the team docker compose file, and the pipeline's small helpers."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolrl.config import ConfigError, Params, apply_overrides, load_params, load_raw
from toolrl.dicts import numbers
from toolrl.orchestration import experiment_name, metrics_files
from toolrl.params_file import field_comment, regenerate, render
from toolrl.profiles import (
    as_overrides,
    available,
    compose,
    dvc_set_args,
    format_value,
    leaves,
    profile_overrides,
)

ROOT = Path(__file__).resolve().parents[1]

# Which params.yaml sections each stage may depend on: a stage never reruns for another's section.
STAGE_SECTIONS = {
    "prepare_model": {"model"},
    "curate": {"data", "multi_turn.seed", "multi_turn.eval_share"},
    "sft": {"sft"},
    "grpo": {"grpo", "multi_turn.limits"},
    "trm_data": {"trm.data"},
    "trm": {"trm.model"},
    "grpo_trm": {"grpo", "trm.grpo", "multi_turn.limits"},
    # the held-out scenarios, the seeds' models it compares as methods and the reward variants' models
    "evaluate": {"evaluate", "multi_turn.seed", "multi_turn.eval_share", "seeds", "grid"},
}


# ---------------------------------------------------------------- params.yaml


def test_params_yaml_lists_every_key_at_its_default():
    """DVC only tracks keys present in params.yaml; `make params` regenerates it from the schema."""
    assert load_raw(ROOT / "params.yaml") == Params().model_dump(mode="json"), (
        "params.yaml differs from the schema's defaults: run `make params`")


def test_rendered_params_parse_back_and_carry_the_schema_comments():
    text = render(Params())
    assert yaml.safe_load(text) == Params().model_dump(mode="json")
    assert "# seeds tiny-random's weights" in text  # the field's description in config.py
    assert "\ngrpo:\n" in text and "\ntracking:\n" in text


def test_params_help_is_the_fields_description():
    """The help lives with the field (pydantic's description), not in comments read from source; a
    subclass that only changes a default keeps its parent's help."""
    from toolrl.config import ModelParams, SftParams, TrainCommon

    assert ModelParams.model_fields["seed"].description == "seeds tiny-random's weights"
    assert SftParams.model_fields["plots_file"].description is None
    assert field_comment(SftParams, "plots_file") == TrainCommon.model_fields["plots_file"].description
    assert field_comment(SftParams, "bf16").startswith("Mixed precision")
    assert field_comment(ModelParams, "revision") == ""


def test_regenerate_keeps_values_and_reports_keys_the_schema_dropped(tmp_path):
    raw = Params().model_dump(mode="json")
    raw["grpo"]["max_steps"] = 7
    raw["grpo"]["retired_knob"] = 1
    del raw["sft"]["max_steps"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    text, dropped = regenerate(path)
    data = yaml.safe_load(text)
    assert dropped == ["grpo.retired_knob"]
    assert data["grpo"]["max_steps"] == 7
    assert data["sft"]["max_steps"] == Params().sft.max_steps


# ---------------------------------------------------------------- profiles


def test_every_profile_is_valid():
    names = available(ROOT)
    assert {"default", "smoke"} <= set(names)
    for name in names:
        compose(name, root=ROOT, params_file="params.yaml")


def test_smoke_profile_is_tiny():
    params = load_params(ROOT / "params.yaml", profile_overrides("smoke", ROOT))
    assert params.model.name == "tiny-random"
    assert params.sft.max_steps <= 5 and params.grpo.max_steps <= 5
    assert all(s.limit and s.limit <= 100 for s in params.data.sources)


def test_a_profile_extends_another_and_its_own_settings_win(tmp_path):
    grid = load_params(ROOT / "params.yaml", profile_overrides("grid", ROOT))
    full = load_params(ROOT / "params.yaml", profile_overrides("full", ROOT))
    assert grid.grid.variants and full.grid.variants == []
    assert grid.model_dump(exclude={"grid", "evaluate"}) == full.model_dump(exclude={"grid", "evaluate"})
    assert grid.evaluate.limit is None and grid.evaluate.bfcl_categories == full.evaluate.bfcl_categories

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.yaml").write_text("grpo: {max_steps: 5, save_steps: 5}\n")
    (configs / "b.yaml").write_text("extends: a\ngrpo: {max_steps: 7}\n")
    assert profile_overrides("b", tmp_path, ROOT / "params.yaml") == ["grpo.max_steps=7", "grpo.save_steps=5"]
    (configs / "a.yaml").write_text("extends: b\n")
    with pytest.raises(ConfigError, match="b -> a -> b"):
        profile_overrides("b", tmp_path, ROOT / "params.yaml")
    (configs / "c.yaml").write_text("extends: [a]\n")
    with pytest.raises(ConfigError, match="takes the name of another profile"):
        profile_overrides("c", tmp_path, ROOT / "params.yaml")
    (configs / "d.yaml").write_text("extends: nowhere\n")
    with pytest.raises(ConfigError, match="profile 'nowhere' not found"):
        profile_overrides("d", tmp_path, ROOT / "params.yaml")


def test_leaves_walk_mappings_and_set_lists_whole():
    tree = {"grpo": {"reward": {"variant": "coarse"}, "learning_rate": 1e-5},
            "data": {"sources": [{"name": "bfcl", "limit": 8}]}}
    assert as_overrides(leaves(tree)) == ["grpo.reward.variant=coarse", "grpo.learning_rate=1.0e-05",
                                             "data.sources=[{name: bfcl, limit: 8}]"]
    assert format_value(None) == "null" and format_value(True) == "true"


def test_profile_overrides_mean_the_same_to_toolrl_and_to_dvc(tmp_path):
    """`dvc exp run -S` parses values with Hydra's grammar, toolrl with YAML: both must agree."""
    from dvc.utils.hydra import apply_overrides as dvc_apply

    overrides = [*profile_overrides("smoke", ROOT), "grpo.reward.weights.format=2.0",
                 "evaluate.bfcl_categories=[simple_python, multiple]", "trm.data.judge.base_url=null",
                 "evaluate.limit_per_benchmark={api_bank: null}"]
    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    dvc_apply(target, dvc_set_args(overrides, target))  # DVC's own code path for -S
    by_dvc = load_params(target)
    by_toolrl = load_params(ROOT / "params.yaml", overrides)
    assert by_dvc == by_toolrl
    assert by_dvc.grpo.reward.weights == {"format": 2.0}
    assert by_dvc.evaluate.limit_per_benchmark == {"api_bank": None}  # a new key in a mapping


def test_unknown_profile_and_bad_profile_key_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="profile 'nope' not found"):
        compose("nope", root=ROOT)
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "configs" / "typo.yaml").write_text("grpo:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError, match=r"grpo\.max_stepz: unknown key"):
        compose("typo", root=tmp_path)


def test_cli_prints_a_profile_as_dvc_overrides():
    from toolrl.cli import app

    out = CliRunner().invoke(app, ["params", "profile", "smoke", "--params", str(ROOT / "params.yaml")],
                             catch_exceptions=False)
    assert out.exit_code == 0
    assert "model.name=tiny-random" in out.stdout.splitlines()


# ---------------------------------------------------------------- dvc.yaml


def _all_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _stages() -> dict:
    """The stages but the seeds' and the reward variants' (`foreach` templates of grpo and grpo_trm, tested apart)."""
    return {name: stage for name, stage in _all_stages().items() if "foreach" not in stage}


def test_a_seed_stage_is_its_stage_but_for_the_seed():
    """grpo_seed / grpo_trm_seed: one stage per seed of `seeds.<stage>`, with the stage's deps and params,
    its command with --seed, and its outputs where `SeedsParams.overrides` puts them."""
    from toolrl.config import SEEDED_STAGES, SeedsParams, load_params

    stages = _all_stages()
    seeded = {name: stage for name, stage in stages.items() if "foreach" in stage and name.endswith("_seed")}
    assert set(seeded) == {f"{s}_seed" for s in SEEDED_STAGES}
    assert {name for name, stage in stages.items() if "foreach" in stage} == {*seeded, "grpo_variant"}
    for base in SEEDED_STAGES:
        stage = seeded[f"{base}_seed"]
        assert stage["foreach"] == f"${{seeds.{base}}}"
        do = stage["do"]
        assert do["cmd"] == f"python -m flows.{base} --seed ${{item}}"
        assert do["deps"] == stages[base]["deps"] and do["params"] == stages[base]["params"]
        seeds = SeedsParams(output_dir="x/seeds", reports_dir="y/seeds")
        params = load_params(ROOT / "params.yaml", seeds.overrides(base, 7))
        sec = params.grpo if base == "grpo" else params.trm.grpo
        assert params.grpo.seed == 7 and not params.tracking.register_models
        for key, paths in (("output_dir", do["outs"]), ("metrics_file", do["metrics"]), ("plots_file", do["plots"])):
            (path,) = [next(iter(p)) for p in paths]
            path = path.replace("${seeds.output_dir}", "x/seeds").replace("${seeds.reports_dir}", "y/seeds")
            assert path.replace("${item}", "7") == getattr(sec, key), key
    evaluate = stages["evaluate"]
    assert "${seeds.output_dir}" in evaluate["deps"] and "seeds" in evaluate["params"]


def test_a_variant_stage_is_grpo_but_for_the_reward():
    """grpo_variant: one stage per name in `grid.variants`, with grpo's deps and params, its command with
    --variant, and its outputs where `GridParams.overrides` puts them."""
    from toolrl.config import GridParams

    stages = _all_stages()
    stage = stages["grpo_variant"]
    assert stage["foreach"] == "${grid.variants}"
    do = stage["do"]
    assert do["cmd"] == "python -m flows.grpo --variant ${item}"
    assert do["deps"] == stages["grpo"]["deps"] and do["params"] == stages["grpo"]["params"]
    grid = GridParams(output_dir="x/grid", reports_dir="y/grid")
    params = load_params(ROOT / "params.yaml", grid.overrides("coarse"))
    assert params.grpo.reward.variant == "coarse" and not params.tracking.register_models
    for key, paths in (("output_dir", do["outs"]), ("metrics_file", do["metrics"]), ("plots_file", do["plots"])):
        (path,) = [next(iter(p)) for p in paths]
        path = path.replace("${grid.output_dir}", "x/grid").replace("${grid.reports_dir}", "y/grid")
        assert path.replace("${item}", "coarse") == getattr(params.grpo, key), key
    evaluate = stages["evaluate"]
    assert "${grid.output_dir}" in evaluate["deps"] and "grid" in evaluate["params"]


def test_every_stage_runs_its_flow_and_depends_on_its_own_section_only():
    stages = _stages()
    assert "prepare_model" in stages
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m flows.{name}", name
        assert (ROOT / "flows" / f"{name}.py").exists(), f"{name}: flows/{name}.py missing"
        sections = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params") or []}
        assert sections and sections <= STAGE_SECTIONS[name], f"{name} tracks {sections}"
        for dep in stage["deps"]:
            if "${" not in dep and not dep.startswith(("data/", "models/", "reports/")):
                assert (ROOT / dep).exists(), f"{name}: dep {dep} does not exist"
        assert stage.get("outs"), f"{name} declares no outputs"


def test_a_stage_command_with_seed_runs_the_flow_as_that_seed():
    """`python -m flows.grpo_trm --seed 3` (dvc.yaml's grpo_trm_seed@3) hands the flow the seed's overrides
    after the user's."""
    from flows.common import run_stage

    seen = {}

    def flow(params_path, overrides):
        seen.update(params_path=params_path, overrides=overrides)

    params = str(ROOT / "params.yaml")
    assert run_stage("grpo_trm", flow, ["--params", params, "-S", "grpo.max_steps=3", "--seed", "3"]) == 0
    p = load_params(params, seen["overrides"])
    assert seen["overrides"][0] == "grpo.max_steps=3" and p.grpo.max_steps == 3 and p.grpo.seed == 3
    assert p.trm.grpo.output_dir == "models/seeds/grpo_trm_s3" and not p.tracking.register_models


def test_a_stage_command_with_variant_runs_grpo_with_that_reward(capsys):
    """`python -m flows.grpo --variant coarse` (dvc.yaml's grpo_variant@coarse); other stages, or a seed and a
    variant at once, are refused before Prefect starts."""
    from flows.common import run_stage

    seen = {}

    def flow(params_path, overrides):
        seen.update(overrides=overrides)

    params = str(ROOT / "params.yaml")
    assert run_stage("grpo", flow, ["--params", params, "-S", "grpo.max_steps=3", "--variant", "coarse"]) == 0
    p = load_params(params, seen["overrides"])
    assert p.grpo.max_steps == 3 and p.grpo.reward.variant == "coarse" and p.grpo.output_dir == "models/grid/grpo_coarse"
    seen.clear()
    assert run_stage("grpo_trm", flow, ["--params", params, "--variant", "coarse"]) == 2
    assert run_stage("grpo", flow, ["--params", params, "--variant", "coarse", "--seed", "1"]) == 2
    assert run_stage("grpo", flow, ["--params", params, "--variant", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "--variant is for the grpo stage" in err and "give one of them" in err and "unknown reward variant" in err
    assert not seen


def test_a_stage_without_seeds_refuses_seed(capsys):
    """Refused before Prefect starts (so this test's captured stream never becomes Prefect's console)."""
    from flows.common import run_stage

    def flow(params_path, overrides):
        raise AssertionError("the flow must not run")

    assert run_stage("sft", flow, ["--params", str(ROOT / "params.yaml"), "--seed", "1"]) == 2
    assert "--seed is for the grpo and grpo_trm stages" in capsys.readouterr().err


# The schema modules (src/toolrl/schema/) behind each params section, and those a stage reads beyond its
# own sections: trm and evaluate prepare a model reference with the model section's schema.
SECTION_SCHEMA = {"model": {"model"}, "data": {"data"}, "sft": {"training", "sft"}, "grpo": {"training", "grpo"},
                  "trm": {"trm"}, "evaluate": {"evaluate"}, "multi_turn": {"multi_turn"}, "seeds": {"seeds"},
                  "grid": {"grid"}}
EXTRA_SCHEMA = {"trm": {"model"}, "evaluate": {"model"}}


def test_every_stage_depends_on_the_schema_of_its_own_sections_only():
    """Editing one section's schema module reruns the stages that track that section, no others."""
    for name, stage in _stages().items():
        sections = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params") or []}
        expected = {"base"} | EXTRA_SCHEMA.get(name, set())
        for section in sections:
            expected |= SECTION_SCHEMA[section.split(".")[0]]
        schema = {Path(d).stem for d in stage["deps"] if d.startswith("src/toolrl/schema/")}
        assert schema == expected, f"{name} depends on schema modules {sorted(schema)}"
        assert "src/toolrl/config.py" in stage["deps"], f"{name}: the root that loads params is a dep"
    modules = {p.stem for p in (ROOT / "src" / "toolrl" / "schema").glob("*.py")} - {"__init__"}
    assert modules == set().union(*SECTION_SCHEMA.values(), {"base"}, {"tracking"})


# Where each stage's code starts, and the modules it never runs: launch.py imports training/grpo.py
# (and through it shared_prefix.py) for the grpo stage only, training/sft.py for sft only.
STAGE_ENTRIES = {
    # launch.py imports each stage's module inside the branch for that stage only; callbacks.py reads
    # GRPO's multi-turn trajectories, which an SFT or TRM batch never has
    "sft": (["training/launch.py", "training/sft.py"],
            {"training/grpo.py", "trm/__init__.py", "trm/grpo.py", "multiturn/trajectory.py"}),
    "grpo": (["training/launch.py", "training/grpo.py"], {"training/sft.py", "trm/__init__.py", "trm/grpo.py"}),
    "trm_data": (["trm/data.py"], set()),
    "trm": (["trm/trainer.py"], {"multiturn/trajectory.py"}),
    "grpo_trm": (["training/launch.py", "trm/grpo.py"], {"training/sft.py"}),
    "evaluate": (["evaluation/stage.py"], set()),
}
# The modules whose code decides what a stage writes: its training / TRM code, the multi-turn loop,
# the rewards, the evaluation (its generation, checkers and sampling), and the shared decode loop,
# formats and model loading. (Schema modules have their own
# test above; config, tracking and dicts load params and log, and change no output.)
TRACKED_PACKAGES = {"training", "trm", "multiturn", "rewards", "evaluation"}
TRACKED_MODULES = {"decode.py", "formats.py", "jsonl.py", "models.py", "hardware.py"}


def _tracked(path: Path) -> bool:
    """A tracked module; a package's `__init__.py` only when it holds more than its docstring."""
    rel = path.relative_to(ROOT / "src" / "toolrl")
    if path.name == "__init__.py" and all(
            isinstance(n, ast.Expr) or (isinstance(n, ast.ImportFrom) and n.module == "__future__")
            for n in ast.parse(path.read_text()).body):
        return False
    return (len(rel.parts) > 1 and rel.parts[0] in TRACKED_PACKAGES) or str(rel) in TRACKED_MODULES


def _imported_modules(path: Path) -> set[Path]:
    """The tracked project files that `path` imports anywhere (functions included; not the imports of
    an `if TYPE_CHECKING:` block, which never run)."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    src = ROOT / "src"
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            parts = name.split(".")
            for i in range(2, len(parts) + 1):
                base = src.joinpath(*parts[:i])
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.exists() and _tracked(candidate):
                        found.add(candidate)
    return found


def test_every_stage_depends_on_the_modules_it_imports():
    """Each stage lists its own training/TRM modules, not the whole packages (editing GRPO's trainer
    must not rerun sft), and none of the tracked modules its code imports is missing (a dep that is a
    folder covers what is in it): a change to the decode loop must rerun what decodes."""
    stages = _stages()
    pkg = ROOT / "src" / "toolrl"
    for name, (entries, never) in STAGE_ENTRIES.items():
        deps = set(stages[name]["deps"])
        assert not deps & {"src/toolrl/training", "src/toolrl/trm"}, f"{name} depends on a whole package"
        seen: set[Path] = set()
        todo = [pkg / e for e in entries]
        while todo:
            path = todo.pop()
            if path in seen or str(path.relative_to(pkg)) in never:
                continue
            seen.add(path)
            todo.extend(_imported_modules(path))
        rel = sorted(str(p.relative_to(ROOT)) for p in seen)
        missing = [r for r in rel if not any(r == d or r.startswith(d.rstrip("/") + "/") for d in deps)]
        assert not missing, f"{name} imports {missing}, which are not in its deps"


def test_stage_outputs_follow_params_yaml():
    """Output paths are interpolated from params.yaml, so a changed output_dir cannot drift."""
    params = Params().model_dump(mode="json")
    for name, stage in _stages().items():
        for out in stage["outs"]:
            path = out if isinstance(out, str) else next(iter(out))
            for ref in re.findall(r"\$\{([^}]+)\}", path):
                node = params
                for part in ref.split("."):
                    node = node[part]
                assert isinstance(node, str), f"{name}: ${{{ref}}} is not a path"


def test_metrics_files_map_to_their_stage(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(yaml.safe_dump({"stages": {
        "evaluate": {"cmd": "x", "metrics": [{"reports/metrics.json": {"cache": False}}]},
        "sft": {"cmd": "y", "metrics": ["reports/metrics/sft.json"]}}}))
    assert metrics_files(dvc_yaml) == {"reports/metrics.json": "evaluate", "reports/metrics/sft.json": "sft"}


# ---------------------------------------------------------------- pipeline helpers


def test_experiment_names_are_valid_git_ref_parts():
    assert experiment_name("smoke-likable pony!") == "smoke-likable-pony"
    assert experiment_name("..") == "run"


def test_metrics_flatten_to_stage_prefixed_names():
    tree = {"sft": {"bfcl": {"overall": 0.5, "n": 10}}, "note": "text", "ok": True}
    assert numbers(tree, "evaluate") == {
        "evaluate/sft/bfcl/overall": 0.5, "evaluate/sft/bfcl/n": 10.0, "evaluate/ok": 1.0}


def test_one_flattener_serves_params_metrics_and_overrides():
    from toolrl import dicts
    from toolrl.tracking import flat_params

    tree = {"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None}
    assert dicts.flatten(tree) == {"a/b": 1, "a/c": [1, 2], "e": None}
    assert dicts.flatten(tree, "p", sep=".", keep_empty=True) == {"p.a.b": 1, "p.a.c": [1, 2], "p.a.d": {},
                                                                   "p.e": None}
    assert dicts.flatten(3, "x") == {"x": 3} and dicts.flatten({}, keep_empty=True) == {}
    assert dicts.numbers({"a": {"ok": True, "n": 2}}, bools=False) == {"a/n": 2.0}
    assert flat_params({"lr": 1e-5, "reward": {"variant": "x" * 600}}, "grpo") == {
        "grpo.lr": "1e-05", "grpo.reward.variant": "x" * 497 + "..."}
    assert as_overrides(leaves({"evaluate": {"limit_per_benchmark": {}}})) == ["evaluate.limit_per_benchmark={}"]
    assert as_overrides(leaves({})) == []


def test_the_experiment_declares_itself_a_model_training_one(tmp_path, monkeypatch):
    """MLflow 3's `mlflow.experimentKind` tag, on a real local store: set on a new experiment and on
    one made before it; a kind someone already chose is kept."""
    import mlflow
    import mlflow.tracking.fluent as fluent

    from toolrl.config import TrackingParams
    from toolrl.tracking import configure

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)  # configure sets the active experiment
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    kind = "mlflow.experimentKind"
    previous = mlflow.get_tracking_uri()
    try:
        fresh = configure(TrackingParams(tracking_uri=uri, experiment="fresh"))
        assert client.get_experiment(fresh).tags[kind] == "custom_model_development"
        older = client.create_experiment("older")
        assert kind not in client.get_experiment(older).tags
        assert configure(TrackingParams(tracking_uri=uri, experiment="older")) == older
        assert client.get_experiment(older).tags[kind] == "custom_model_development"
        chosen = client.create_experiment("chosen", tags={kind: "genai_development"})
        configure(TrackingParams(tracking_uri=uri, experiment="chosen"))
        assert client.get_experiment(chosen).tags[kind] == "genai_development"
    finally:
        mlflow.set_tracking_uri(previous)


def test_overrides_apply_like_dvc_sets_params():
    raw = apply_overrides({"grpo": {"reward": {"variant": "default"}}}, ["grpo.reward.variant=coarse"])
    assert raw == {"grpo": {"reward": {"variant": "coarse"}}}


# ---------------------------------------------------------------- team deployment


def test_team_compose_file_is_complete():
    compose_file = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    services = compose_file["services"]
    assert {"prefect", "prefect-db", "mlflow", "mlflow-db", "minio", "minio-buckets"} <= set(services)
    # Same versions as the project's pins, so team servers speak the clients' API.
    assert services["prefect"]["image"].startswith(f"prefecthq/prefect:{version('prefect')}-")
    assert services["mlflow"]["image"].endswith(f":v{version('mlflow')}")
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image"
        for port in svc.get("ports", []):
            host, _, inner = port.rpartition(":")
            assert host.startswith("${BIND_ADDRESS:-127.0.0.1}"), f"{name}: {port} must bind loopback by default"
            assert inner.isdigit()
        for volume in svc.get("volumes", []):
            assert volume.split(":")[0] in compose_file["volumes"], f"{name}: undeclared volume {volume}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    command = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in command and "s3://" in command
    assert "postgresql+asyncpg://" in services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert services["prefect"]["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_team_env_example_defines_every_variable_compose_uses():
    text = (ROOT / "infra" / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))  # `$${X}` is the container's own variable
    env = (ROOT / "infra" / "team.env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", env, flags=re.M))
    assert used <= defined, f"not in team.env.example: {sorted(used - defined)}"
    assert {"PREFECT_API_URL", "MLFLOW_TRACKING_URI"} <= defined


GLOBAL_FOR_DILL = 1


def _uses_a_global() -> int:
    return GLOBAL_FOR_DILL


def test_heavy_tasks_keep_prints_out_of_prefect_so_dill_sees_globals():
    """datasets fingerprints map functions with dill, which finds a function's globals by capturing
    `dis` output on sys.stdout; Prefect's log_prints would swallow that output. Our heavy tasks opt
    out of it, and a task that does sees its globals even inside a flow that logs prints."""
    import dill.detect
    from prefect import flow, task

    from tasks.evaluate import evaluate_models
    from tasks.train import train_stage
    from tasks.trm import build_trm_data, train_trm

    for t in (train_stage, build_trm_data, train_trm, evaluate_models):
        assert t.log_prints is False, t.name

    @task(log_prints=False)  # the setting of the tasks above
    def probe() -> list[str]:
        return sorted(dill.detect.nestedglobals(_uses_a_global))

    @flow(log_prints=True)
    def pipeline_like() -> list[str]:
        return probe()

    from flows.common import prefect_settings

    with prefect_settings():  # the flows' patient temporary server: 20 s is too short on 2 busy cores
        assert "GLOBAL_FOR_DILL" in pipeline_like()


def test_grid_refuses_an_unknown_reward_variant_before_queueing_anything():
    done = subprocess.run(["bash", str(ROOT / "infra" / "grid.sh"), "coarse", "no_such_variant"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "unknown reward variant 'no_such_variant'" in done.stderr and "toolrl reward variants" in done.stderr
    assert "queued" not in done.stdout


def test_grid_refuses_a_baseline_whose_dvc_lock_is_not_committed(tmp_path):
    """Queued DVC experiments start from the last commit: without the baseline's dvc.lock they all fail."""
    import os
    import sys

    (tmp_path / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "grid.sh", tmp_path / "infra" / "grid.sh")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, env=env)

    def grid():
        return subprocess.run(["bash", "infra/grid.sh", "coarse"], capture_output=True, text=True,
                              cwd=tmp_path, env=env)

    git("init", "-q")
    git("add", "infra")
    git("commit", "-qm", "grid")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    for state in ("untracked", "modified"):
        done = grid()
        assert done.returncode == 2, (state, done.stderr)
        assert "dvc.lock is not committed" in done.stderr and "git add dvc.lock" in done.stderr
        assert "queued" not in done.stdout
        git("add", "dvc.lock")
        git("commit", "-qm", "baseline")
        (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")


# ---------------------------------------------------------------- stage output in the pipeline's log


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_progress_bar_reads_as_a_few_lines_each_said_once():
    from toolrl.processes import OutputLines

    clock = _Clock()
    lines = OutputLines(every_s=60.0, clock=clock)
    said: list[str] = []
    said += lines.feed(b"Running stage 'sft':\n")
    # tqdm: each update starts with a carriage return; "\xe2\x96\x88" is the bar's block, cut between chunks
    for i, step in enumerate(range(0, 101, 10)):
        clock.now = i * 10.0
        said += lines.feed(f"\rtrain: {step:3d}%|".encode() + (b"\xe2\x96" if step == 50 else b"#"))
        if step == 50:
            said += lines.feed(b"\x88")
    # tqdm.write (transformers' loss dicts): clear the bar, write the line, redraw the bar
    said += lines.feed(b"\r" + b" " * 20 + b"\r{'loss': 1.5}\n\rtrain: 100%|#")
    said += lines.feed(b"\n\r\n")  # the bar's end; a blank line
    said += lines.feed(b"eval: 1/2\r\neval: 2/2")  # CRLF ends a line; the last has no newline
    said += lines.close()
    assert said == [
        "Running stage 'sft':",
        "train:   0%|#",  # the first state, as soon as it is complete
        "train:  60%|#",  # 60 s later, while it moves
        "{'loss': 1.5}",
        "train: 100%|#",  # the final state, once
        "eval: 1/2",
        "eval: 2/2",
    ]


def test_a_stage_log_line_keeps_its_level_and_source_not_its_timestamp():
    import logging

    from toolrl.processes import log_record

    assert log_record("19:04:41.301 | WARNING | Flow run 'sft' - low disk") == (logging.WARNING,
                                                                               "Flow run 'sft' - low disk")
    assert log_record("19:04:41.301 | INFO    | prefect - Starting") == (logging.INFO, "prefect - Starting")
    assert log_record("Running stage 'sft':") == (logging.INFO, "Running stage 'sft':")


def test_streamed_stage_output_reaches_the_log_as_a_few_lines(monkeypatch):
    """A real process drawing a tqdm bar (one update per step) through `run_streamed`."""
    import logging
    import sys

    import tasks.dvc as dvc_tasks

    records: list[tuple[int, str]] = []

    class Logger:
        def info(self, msg, *args):
            self.log(logging.INFO, msg, *args)

        def log(self, level, msg, *args):
            records.append((level, msg % args))

    monkeypatch.setattr(dvc_tasks, "get_run_logger", Logger)
    child = ("import sys, time; from tqdm import tqdm\n"
             "print('12:00:00.000 | WARNING | Flow run \\'s\\' - careful', flush=True)\n"
             "for _ in tqdm(range(200), desc='work', mininterval=0, file=sys.stderr): time.sleep(0.001)\n"
             "print(\"Running stage 'x':\", flush=True)\n")
    run = dvc_tasks.run_streamed([sys.executable, "-c", child], ".", {"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and run.ran == ["x"]
    assert records[1] == (logging.WARNING, "Flow run 's' - careful")
    bar = [m for _, m in records if m.startswith("work:")]
    assert len(bar) == 2 and bar[0].startswith("work:   0%") and bar[1].startswith("work: 100%")


def test_dvc_tasks_ask_dvc_for_the_commit_and_the_experiment(tmp_path):
    """`git_has_commit` and `exp_rev` go through DVC's API (scm.no_commits, resolve_name), also in a
    repository without a commit, where the pipeline falls back to `dvc repro`."""
    import subprocess
    import sys

    from tasks.dvc import exp_rev, git_has_commit

    env = {"PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(tmp_path)}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    assert not git_has_commit(tmp_path)
    assert exp_rev(tmp_path, "any") is None
    for cmd in (["git", "add", "-A"], ["git", "commit", "-q", "-m", "init"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    assert git_has_commit(tmp_path)
    assert exp_rev(tmp_path, "any") is None
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    subprocess.run(["git", "update-ref", f"refs/exps/{head[:2]}/{head[2:]}/five", head], cwd=tmp_path, env=env,
                   check=True)
    assert exp_rev(tmp_path, "five") == head
