"""params.yaml validation: defaults, unknown and ill-typed keys, overrides as `dvc exp run -S` writes them."""

from __future__ import annotations

import pytest

from toolrl.config import ConfigError, Params, apply_overrides, load_params, parse_override, validate


def test_defaults_are_valid():
    p = Params()
    assert p.model.name == "smollm2-135m-instruct"
    assert p.grpo.reward.variant == "default"


def test_project_params_file_is_valid(project_root):
    p = load_params(project_root / "params.yaml")
    assert isinstance(p, Params)


def test_project_params_file_is_the_schemas_rendering(project_root):
    """params.yaml is the default params with the schema's descriptions as comments: a schema change
    without `make params` leaves it stale (a default, or a comment that no longer says what the key does)."""
    from toolrl.params_file import render

    assert (project_root / "params.yaml").read_text() == render(Params()), "params.yaml is stale: run `make params`"


def test_unknown_key_names_path_and_allowed_keys():
    with pytest.raises(ConfigError) as exc:
        validate({"grpo": {"learnin_rate": 1e-6}})
    msg = str(exc.value)
    assert "grpo.learnin_rate: unknown key" in msg
    assert "learning_rate" in msg  # the allowed keys are listed


def test_unknown_section():
    with pytest.raises(ConfigError, match="grpoo: unknown key.*allowed keys here: .*grpo"):
        validate({"grpoo": {}})


def test_ill_typed_value_names_key():
    with pytest.raises(ConfigError, match=r"sft\.max_steps"):
        validate({"sft": {"max_steps": "many"}})


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as exc:
        validate({"grpo": {"init": "warm"}})
    assert "grpo.init" in str(exc.value) and "'sft'" in str(exc.value) and "'base'" in str(exc.value)


def test_out_of_range_value():
    with pytest.raises(ConfigError, match=r"grpo\.num_generations"):
        validate({"grpo": {"num_generations": 1}})


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("grpo.reward.variant=coarse", ["grpo", "reward", "variant"], "coarse"),
        ("grpo.learning_rate=1e-6", ["grpo", "learning_rate"], 1e-6),
        ("sft.lora.enabled=true", ["sft", "lora", "enabled"], True),
        ("evaluate.limit=null", ["evaluate", "limit"], None),
        ("evaluate.benchmarks=[bfcl]", ["evaluate", "benchmarks"], ["bfcl"]),
    ],
)
def test_parse_override_reads_yaml_values(text, path, value):
    assert parse_override(text) == (path, value)


def test_overrides_apply_and_validate(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("grpo:\n  max_steps: 5\n")
    p = load_params(f, ["grpo.max_steps=7", "sft.lora.enabled=true"])
    assert p.grpo.max_steps == 7 and p.sft.lora.enabled is True


def test_bad_override_forms():
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("grpo.max_steps")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides({"grpo": {"max_steps": 3}}, ["grpo.max_steps.x=1"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_params(listy)


# ---------------------------------------------------------------- seeds


def test_seeds_join_the_evaluation_as_arms():
    p = validate({"seeds": {"grpo": [1, 2], "grpo_trm": [3]}})
    assert p.evaluate.arms == {"sft": ["sft"], "grpo": ["grpo", "models/seeds/grpo_s1", "models/seeds/grpo_s2"],
                               "grpo_trm": ["grpo_trm", "models/seeds/grpo_trm_s3"]}
    assert p.evaluate.models == ["base", "sft", "grpo", "grpo_trm", "models/seeds/grpo_s1",
                                 "models/seeds/grpo_s2", "models/seeds/grpo_trm_s3"]
    # a stage not evaluated leaves its own model out of its arm, and no SFT arm without the SFT
    p = validate({"seeds": {"grpo": [4], "output_dir": "elsewhere"}, "evaluate": {"models": ["grpo"]}})
    assert p.evaluate.arms == {"grpo": ["grpo", "elsewhere/grpo_s4"]}
    assert validate({}).evaluate.arms == {} and validate({}).evaluate.models == ["base", "sft", "grpo", "grpo_trm"]


def test_arms_set_by_hand_win_over_the_seeds():
    arms = {"a": ["sft"], "b": ["grpo"]}
    p = validate({"seeds": {"grpo": [1]}, "evaluate": {"arms": arms}})
    assert p.evaluate.arms == arms and p.evaluate.models == ["base", "sft", "grpo", "grpo_trm"]


@pytest.mark.parametrize(("seeds", "words"), [
    ({"grpo": [0, 1]}, "seeds.grpo lists 0, the seed of the grpo stage's own model"),
    ({"grpo_trm": [2, 2]}, "more than once"),
    ({"grpo": [-1]}, "0 or more"),
])
def test_bad_seeds_are_refused_with_the_fix(seeds, words):
    with pytest.raises(ConfigError, match=words):
        validate({"seeds": seeds})


def test_a_seed_run_is_the_stage_with_its_seed_and_outputs(project_root):
    from toolrl.config import SeedsParams

    overrides = SeedsParams().overrides("grpo_trm", 3)
    p = load_params(project_root / "params.yaml", ["seeds.grpo_trm=[1, 3]", *overrides])
    assert p.grpo.seed == 3 and p.trm.grpo.output_dir == "models/seeds/grpo_trm_s3"
    assert p.trm.grpo.metrics_file == "reports/seeds/grpo_trm_s3.json"
    assert p.grpo.output_dir == "models/grpo"  # the other stage's outputs are left alone
    assert not p.tracking.register_models and p.seeds.grpo_trm == [] and p.evaluate.arms == {}


# ---------------------------------------------------------------- the reward-variant grid


def test_grid_variants_join_the_evaluation_after_the_seeds():
    p = validate({"grid": {"variants": ["coarse", "strict_match"]}, "seeds": {"grpo": [1]}})
    assert p.evaluate.models == ["base", "sft", "grpo", "grpo_trm", "models/seeds/grpo_s1", "models/grid/grpo_coarse",
                                 "models/grid/grpo_strict_match"]
    assert p.evaluate.arms == {"sft": ["sft"], "grpo": ["grpo", "models/seeds/grpo_s1"]}  # a variant is no seed
    listed = validate({"grid": {"variants": ["coarse"]}, "evaluate": {"models": ["models/grid/grpo_coarse", "sft"]}})
    assert listed.evaluate.models == ["models/grid/grpo_coarse", "sft"]  # listed by hand: kept where it is


@pytest.mark.parametrize(("grid", "words"), [
    ({"variants": ["coarse", "nonsense"]}, "unknown reward variant 'nonsense'"),
    ({"variants": ["coarse", "coarse"]}, "lists coarse more than once"),
    ({"variants": ["default"]}, "grid.variants lists 'default', the grpo stage's own reward"),
])
def test_bad_grids_are_refused_with_the_fix(grid, words):
    with pytest.raises(ConfigError, match=words):
        validate({"grid": grid})


def test_a_variant_run_is_the_grpo_stage_with_its_reward_and_outputs(project_root):
    from toolrl.config import GridParams

    overrides = GridParams().overrides("coarse")
    p = load_params(project_root / "params.yaml", ["grid.variants=[coarse, length]", "seeds.grpo=[2]", *overrides])
    assert p.grpo.reward.variant == "coarse" and p.grpo.output_dir == "models/grid/grpo_coarse"
    assert p.grpo.metrics_file == "reports/grid/grpo_coarse.json" and p.grpo.plots_file == "reports/grid/grpo_coarse.csv"
    assert p.grpo.seed == 0 and p.trm.grpo.output_dir == "models/grpo_trm"  # the rest is the grpo stage's
    assert not p.tracking.register_models and p.grid.variants == [] and p.seeds.grpo == []
