"""Model references in evaluation, each resolved to a local transformers folder plus a content hash.

- a stage name: `base`, `sft`, `grpo`, `grpo_trm` -> that stage's output folder in params (a stage that
  has not run yet is skipped with a warning, not an error);
- an MLflow registry URI `models:/name@alias` or `models:/name/<version>`: the registered model's
  artifacts are downloaded once per version with MLflow's API into the cache, then loaded like a folder
  (MLflow's transformers flavour layout `model/` + `components/tokenizer/` is merged into one folder);
- `smollm2-135m-instruct` or `tiny-random`: prepared once into the cache with `prepare_base_model`;
- a local folder written by `save_pretrained`;
- a Hugging Face hub id, fetched with `huggingface_hub.snapshot_download`.

The content hash is a SHA-256 of the files that decide what the model generates (weights, config,
tokenizer, chat template), so a retrained model gets a new hash and a copied one keeps its hash.
Hashing the 540 MB of SmolLM2-135M takes about a second; a memo keyed on the files' sizes and mtimes
skips even that when nothing changed since the last run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from toolrl.config import ModelParams, Params
from toolrl.models import EMBEDDED, TINY, ModelError, prepare_base_model

STAGES = ("base", "sft", "grpo", "grpo_trm")
# Files that decide what a model generates; logs, run ids and training state are left out of the hash.
HASHED = ("*.safetensors", "*.bin", "*.pt", "*.model", "config.json", "generation_config.json",
          "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt",
          "chat_template.*", "adapter_config.json", "preprocessor_config.json")
NOT_HASHED = ("training_args.bin", "optimizer.*", "scheduler.*", "rng_state*")
HASH_MEMO = "model_hashes.json"
MLFLOW_READY = "toolrl_download.json"
MODELS_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))")


@dataclass(frozen=True)
class ResolvedModel:
    label: str  # the reference as the user wrote it
    folder: Path
    content_hash: str
    source: str  # where it came from, for the report


@dataclass(frozen=True)
class Skipped:
    label: str
    reason: str


def stage_folder(stage: str, params: Params) -> Path:
    return Path({
        "base": params.model.output_dir,
        "sft": params.sft.output_dir,
        "grpo": params.grpo.output_dir,
        "grpo_trm": params.trm.grpo.output_dir,
    }[stage])


# ---------------------------------------------------------------- content hash


def hashed_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file()
             and any(fnmatch.fnmatch(p.name, pat) for pat in HASHED)
             and not any(fnmatch.fnmatch(p.name, pat) for pat in NOT_HASHED)]
    return sorted(files, key=lambda p: p.name)


def content_hash(folder: str | Path, memo_dir: str | Path | None = None) -> str:
    """SHA-256 over the names and bytes of the folder's generation-relevant files."""
    folder = Path(folder)
    files = hashed_files(folder)
    if not any(f.suffix in (".safetensors", ".bin", ".pt") for f in files):
        raise ModelError(f"{folder} holds no weights (*.safetensors / *.bin): point to a folder written by "
                         "`save_pretrained`, or run the stage that produces it")
    signature = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    memo_path = Path(memo_dir) / HASH_MEMO if memo_dir else None
    memo: dict = {}
    key = str(folder.resolve())
    if memo_path and memo_path.exists():
        try:
            memo = json.loads(memo_path.read_text())
        except json.JSONDecodeError:
            memo = {}  # a damaged memo only costs a re-hash
        if memo.get(key, {}).get("files") == signature:
            return memo[key]["sha256"]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(chunk)
    value = digest.hexdigest()
    if memo_path:
        memo[key] = {"files": signature, "sha256": value}
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        memo_path.write_text(json.dumps(memo, indent=1))
    return value


# ---------------------------------------------------------------- MLflow registry


def _find_model_dir(root: Path) -> Path:
    candidates = sorted((p.parent for p in root.rglob("config.json")), key=lambda p: len(p.parts))
    for folder in candidates:
        if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
            return folder
    raise ModelError(f"the downloaded MLflow model in {root} holds no transformers model (config.json + "
                     "weights): register models logged with mlflow.transformers or a save_pretrained folder")


def _merge_tokenizer(model_dir: Path, root: Path) -> None:
    """MLflow's transformers flavour keeps the tokenizer in components/tokenizer: bring it beside the model."""
    if (model_dir / "tokenizer_config.json").exists():
        return
    found = sorted(root.rglob("tokenizer_config.json"), key=lambda p: len(p.parts))
    if not found:
        raise ModelError(f"the downloaded MLflow model in {root} has no tokenizer: log the tokenizer with the model")
    for f in found[0].parent.iterdir():
        if f.is_file() and not (model_dir / f.name).exists():
            shutil.copy2(f, model_dir / f.name)


def download_registered(ref: str, params: Params, cache_dir: Path) -> tuple[Path, str]:
    """Download a registered model (`models:/name@alias` or `models:/name/version`) once per version."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from toolrl.tracking import tracking_uri

    match = MODELS_URI.fullmatch(ref)
    if not match:
        raise ModelError(f"{ref!r} is not a registry URI: use models:/<name>@<alias> or models:/<name>/<version>")
    name, alias, version = match["name"], match["alias"], match["version"]
    uri = tracking_uri(params.tracking)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelError(f"{ref}: {exc.message.splitlines()[0]} (tracking store {uri}); see the registered "
                         "models and aliases with `mlflow ui`") from None
    dest = cache_dir / "mlflow" / f"{name}-v{mv.version}"
    ready = dest / MLFLOW_READY
    if not ready.exists():
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(partial))
        except MlflowException as exc:
            raise ModelError(f"{ref}: cannot download version {mv.version}: {exc.message.splitlines()[0]}") from None
        model_dir = _find_model_dir(partial)
        _merge_tokenizer(model_dir, partial)
        relative = model_dir.relative_to(partial)
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
        ready.write_text(json.dumps({"ref": ref, "name": name, "version": mv.version, "run_id": mv.run_id,
                                     "model_dir": str(relative)}, indent=2))
    info = json.loads(ready.read_text())
    return dest / info["model_dir"], f"MLflow {name} version {info['version']} (run {info['run_id']})"


# ---------------------------------------------------------------- resolution


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or ref.startswith("models/")


def _hub_snapshot(ref: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=ref))
    except Exception as exc:  # network, auth, unknown repo: all user-fixable, all reported the same way
        raise ModelError(f"cannot fetch hub model {ref!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}): "
                         "use a stage name, a local folder, models:/name@alias, or a hub id reachable "
                         "from this machine") from None


def _refuse_adapter_only(folder: Path) -> None:
    if (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        raise ModelError(f"{folder} holds LoRA adapters only: evaluation needs merged weights (train with "
                         "`lora.merge: true`, or merge with peft's merge_and_unload and save_pretrained)")


def locate(ref: str, params: Params) -> tuple[Path, str] | Skipped:
    """The local folder of a reference and a description of where it came from."""
    cache_dir = Path(params.evaluate.cache_dir)
    if ref in STAGES:
        folder = stage_folder(ref, params)
        if folder.is_dir():
            _refuse_adapter_only(folder)
        if not (folder / "config.json").exists():
            return Skipped(ref, f"stage {ref!r} has no model in {folder} yet (run its stage first); skipped")
        return folder, f"stage {ref} ({folder})"
    if ref.startswith("models:/"):
        return download_registered(ref, params, cache_dir)
    if ref in (EMBEDDED, TINY):
        folder = prepare_base_model(ModelParams(name=ref), cache_dir / "models" / ref)
        return folder, f"{ref} (prepared in {folder})"
    path = Path(ref).expanduser()
    copy_stage = params.seeds.stage_of(ref) or params.grid.stage_of(ref)  # grpo_seed@1, grpo_variant@coarse
    if copy_stage and not (path / "config.json").exists():
        return Skipped(ref, f"stage {copy_stage} has no model in {ref} yet (run it first: "
                            f"`dvc repro {copy_stage}`); skipped")
    if path.exists():
        if path.is_dir():
            _refuse_adapter_only(path)
        if not (path / "config.json").exists():
            raise ModelError(f"{ref} is not a model folder (no config.json): point to a folder written by "
                             "`save_pretrained`")
        return path, f"folder {path}"
    if _looks_like_path(ref):
        raise ModelError(f"model folder {ref} does not exist: run the stage that writes it, or fix the path")
    return _hub_snapshot(ref), f"hub {ref}"


def resolve(ref: str, params: Params) -> ResolvedModel | Skipped:
    located = locate(ref, params)
    if isinstance(located, Skipped):
        return located
    folder, source = located
    return ResolvedModel(label=ref, folder=folder, content_hash=content_hash(folder, params.evaluate.cache_dir),
                         source=source)
