"""Model references: stage names, folders, MLflow registry URIs; content hashes."""

from __future__ import annotations

import shutil

import pytest

from toolrl.config import Params
from toolrl.evaluation.references import Skipped, content_hash, resolve
from toolrl.models import ModelError


def params_for(tmp_path, **sections) -> Params:
    data = {"evaluate": {"cache_dir": str(tmp_path / "cache")}, **sections}
    return Params.model_validate(data)


def test_content_hash_follows_the_weights_not_the_logs(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    original = content_hash(tiny_model_dir)
    assert content_hash(copy) == original  # same files, same hash, wherever they are
    (copy / "mlflow_run_id").write_text("abc")
    (copy / "trainer_state.json").write_text("{}")
    assert content_hash(copy) == original
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert content_hash(copy) != original


def test_content_hash_memo_is_keyed_on_file_stats(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    memo = tmp_path / "memo"
    first = content_hash(copy, memo)
    assert (memo / "model_hashes.json").exists()
    assert content_hash(copy, memo) == first
    (copy / "generation_config.json").write_text('{"do_sample": false}')
    assert content_hash(copy, memo) != first


def test_stage_names_resolve_to_their_output_folders(tiny_model_dir, tmp_path):
    params = params_for(tmp_path, model={"output_dir": str(tiny_model_dir)},
                        sft={"output_dir": str(tmp_path / "models" / "sft")})
    base = resolve("base", params)
    assert not isinstance(base, Skipped)
    assert base.folder == tiny_model_dir and base.content_hash == content_hash(tiny_model_dir)
    sft = resolve("sft", params)
    assert isinstance(sft, Skipped) and "run its stage first" in sft.reason


@pytest.mark.parametrize(("section", "listed", "folder", "stage", "other"), [
    ("seeds", {"grpo": [3]}, "grpo_s3", "grpo_seed@3", "grpo_s4"),
    ("grid", {"variants": ["coarse"]}, "grpo_coarse", "grpo_variant@coarse", "grpo_length"),
])
def test_a_copy_folder_its_stage_has_not_written_is_skipped_like_a_stage(tiny_model_dir, tmp_path, section, listed,
                                                                         folder, stage, other):
    """A seed's or a reward variant's folder (params `seeds`, `grid`) before its stage ran."""
    out = str(tmp_path / section)
    params = params_for(tmp_path, **{section: {**listed, "output_dir": out}})
    missing = resolve(f"{out}/{folder}", params)
    assert isinstance(missing, Skipped) and f"`dvc repro {stage}`" in missing.reason
    with pytest.raises(ModelError, match="does not exist"):  # a folder no listed stage writes stays an error
        resolve(f"{out}/{other}", params)
    shutil.copytree(tiny_model_dir, tmp_path / section / folder)
    assert resolve(f"{out}/{folder}", params).folder == tmp_path / section / folder


def test_bad_references_are_clear_errors(tmp_path):
    params = params_for(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "nowhere" / "model"), params)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path / "empty"), params)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="LoRA adapters only"):
        resolve(str(tmp_path / "adapter"), params)
    with pytest.raises(ModelError, match="models:/<name>@<alias>"):
        resolve("models:/only-a-name", params)


def test_unknown_registered_model_is_a_clear_error(tmp_path, mlflow_uri):
    params = params_for(tmp_path, tracking={"tracking_uri": mlflow_uri})
    with pytest.raises(ModelError, match="toolrl-nothing"):
        resolve("models:/toolrl-nothing@champion", params)


@pytest.mark.slow
def test_registry_uri_downloads_the_logged_model(tiny_model_dir, tmp_path, mlflow_uri):
    """A model logged with mlflow.transformers and registered with an alias resolves to a loadable
    folder with the same content hash as the folder it was logged from."""
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolrl.models import load_model

    mlflow.set_tracking_uri(mlflow_uri)
    # The fluent API remembers the experiment of an earlier test's store; name one in this store.
    mlflow.set_experiment("registry-test")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    with mlflow.start_run():
        mlflow.transformers.log_model(transformers_model={"model": model, "tokenizer": tokenizer}, name="model",
                                      task="text-generation", registered_model_name="toolrl-test",
                                      pip_requirements=["transformers", "torch"])
    mlflow.MlflowClient().set_registered_model_alias("toolrl-test", "champion", "1")

    params = params_for(tmp_path, tracking={"tracking_uri": mlflow_uri})
    resolved = resolve("models:/toolrl-test@champion", params)
    assert not isinstance(resolved, Skipped)
    assert resolved.content_hash == content_hash(tiny_model_dir)
    assert "version 1" in resolved.source
    assert (resolved.folder / "tokenizer_config.json").exists()
    loaded, tok = load_model(str(resolved.folder))
    assert loaded.config.hidden_size == 64 and tok.eos_token == "<|im_end|>"
    # A second resolve reuses the download.
    assert resolve("models:/toolrl-test/1", params).folder == resolved.folder
