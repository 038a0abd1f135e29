"""The state of a stage's output folder: fresh, resumable from a checkpoint, or done.

Two folders (e.g. for `models/grpo`):

    models/grpo/                              the stage's DVC out
        config.json, model.safetensors, tokenizer files     the final model (a plain transformers folder)
        train_fingerprint.json                              what the run was started with
        train_done.json                                     written once the final model is saved
    models/grpo.checkpoints/                  beside it; no stage declares it
        checkpoint-<step>/                                  Trainer checkpoints, every `save_steps`
        mlflow_run_id                                       the stage's MLflow run (toolrl.tracking)
        train_fingerprint.json                              what these checkpoints were made with

Why the checkpoints live beside the out, not in it: `dvc exp run` (so `make run`) checks the
workspace out with force before it reproduces, and that deletes each out the lock file has no hash
for, which is exactly a crashed stage's folder; `persist: true` does not stop it. The `full` profile
lost 50 GRPO+TRM steps that way. A folder that no stage declares is left alone.

A restarted stage with the same fingerprint resumes from the last *complete* checkpoint (one whose
trainer_state.json was written: the Trainer writes it last) into the same MLflow run. A different
fingerprint (other params, other data) starts over, saying which keys changed; so does `fresh=True`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolrl.tracking import RUN_ID_FILE
from toolrl.training.data import TrainingError

CHECKPOINTS_SUFFIX = ".checkpoints"
FINGERPRINT_FILE = "train_fingerprint.json"
DONE_FILE = "train_done.json"
TRAINER_STATE = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME


@dataclass
class OutputState:
    output_dir: Path
    resume_from: Path | None  # the checkpoint to resume from, None for a fresh start
    done: bool  # a finished run with the same fingerprint is already there

    @property
    def checkpoint_dir(self) -> Path:
        return checkpoint_folder(self.output_dir)


def checkpoint_folder(output_dir: str | Path) -> Path:
    """Where a stage's checkpoints and MLflow run id wait for a resume: beside its output folder."""
    out = Path(output_dir)
    return out.with_name(out.name + CHECKPOINTS_SUFFIX)


def _step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def checkpoints(checkpoint_dir: Path) -> list[Path]:
    """checkpoint-<step> folders, oldest first."""
    if not checkpoint_dir.is_dir():
        return []
    found = [p for p in checkpoint_dir.iterdir()
             if p.is_dir() and p.name.startswith("checkpoint-") and p.name.rsplit("-", 1)[1].isdigit()]
    return sorted(found, key=_step)


def latest_checkpoint(checkpoint_dir: Path, say: Callable[[str], None] = print) -> Path | None:
    """The newest complete checkpoint; newer incomplete ones (killed while saving) are removed."""
    for path in reversed(checkpoints(checkpoint_dir)):
        if (path / TRAINER_STATE).exists():
            return path
        say(f"removing incomplete checkpoint {path} (no {TRAINER_STATE}: the process died while saving)")
        shutil.rmtree(path)
    return None


def checkpoint_step(path: Path) -> int:
    return int(json.loads((path / TRAINER_STATE).read_text())["global_step"])


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _owned(output_dir: Path) -> bool:
    return (output_dir / FINGERPRINT_FILE).exists()


def clear(folder: Path) -> None:
    """Remove a training output (or checkpoint) folder, refusing one that training did not write."""
    if not folder.exists():
        return
    if any(folder.iterdir()) and not _owned(folder):
        raise TrainingError(f"{folder} is not empty and was not written by `toolrl train` (no {FINGERPRINT_FILE}): "
                            "empty it or choose another output_dir")
    shutil.rmtree(folder)


def read_output(output_dir: str | Path) -> OutputState:
    """The state `prepare_output` left, read without writing (the other processes of a multi-GPU run)."""
    out = Path(output_dir)
    done = (out / DONE_FILE).exists()
    complete = [p for p in checkpoints(checkpoint_folder(out)) if (p / TRAINER_STATE).exists()]
    return OutputState(output_dir=out, resume_from=None if done or not complete else complete[-1], done=done)


def _settle(folder: Path, fingerprint: dict[str, Any], fresh: bool, say: Callable[[str], None]) -> None:
    """Empty `folder` when it holds another run (other settings, or `fresh`); keep it otherwise."""
    if not folder.exists() or not any(folder.iterdir()):
        return
    if fresh:
        say(f"starting over in {folder} (fresh)")
        clear(folder)
        return
    if not _owned(folder):
        clear(folder)  # raises with the fix
    old = json.loads((folder / FINGERPRINT_FILE).read_text())
    if old != fingerprint:
        changed = ", ".join(_diff(old, fingerprint)) or "(structure)"
        say(f"{folder} holds a run started with other settings (changed: {changed}); starting over")
        clear(folder)


def _move_inside_checkpoints(out: Path, work: Path, say: Callable[[str], None]) -> None:
    """Checkpoints that a version before 2026-12-03 kept inside the output folder (with the run id) move
    beside it, so that a run crashed under that version resumes under this one."""
    inside = checkpoints(out)
    if not inside or not _owned(out) or checkpoints(work):
        return
    work.mkdir(parents=True, exist_ok=True)
    for path in inside:
        path.rename(work / path.name)
    shutil.copy2(out / FINGERPRINT_FILE, work / FINGERPRINT_FILE)
    if (out / RUN_ID_FILE).exists():
        (out / RUN_ID_FILE).rename(work / RUN_ID_FILE)
    say(f"moved {len(inside)} checkpoint(s) from inside {out} (an older layout) to {work}")


def prepare_output(output_dir: str | Path, fingerprint: dict[str, Any], fresh: bool = False,
                   say: Callable[[str], None] = print) -> OutputState:
    """Decide between resuming, starting over and nothing-to-do, and record the fingerprint in the
    output folder and its checkpoint folder. Either may be missing: the output folder when DVC removed
    it (the checkpoints still resume), the checkpoint folder once the run is done."""
    out = Path(output_dir)
    work = checkpoint_folder(out)
    _move_inside_checkpoints(out, work, say)
    for folder in (out, work):
        _settle(folder, fingerprint, fresh, say)
    done = (out / DONE_FILE).exists()
    for folder in ((out, work) if not done else (out,)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=2, sort_keys=True))
    resume = None if done else latest_checkpoint(work, say)
    return OutputState(output_dir=out, resume_from=resume, done=done)


def mark_done(output_dir: Path, summary: dict[str, Any], keep_checkpoints: bool) -> None:
    """Record a finished run; its checkpoints are only needed to resume, so they go unless kept."""
    (output_dir / DONE_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_folder(output_dir), ignore_errors=True)


def read_done(output_dir: Path) -> dict[str, Any]:
    return json.loads((output_dir / DONE_FILE).read_text())


def needed_bytes(init: Path, save_total_limit: int) -> int:
    """About what a training run writes: `save_total_limit` checkpoints of the weights and Adam's
    two moments (three copies of the weights each), then the final model and MLflow's copy of it.
    An estimate from the init model's weight files."""
    weights = sum(f.stat().st_size for f in Path(init).glob("*.safetensors"))
    return weights * (3 * save_total_limit + 2)


def ensure_disk_space(output_dir: str | Path, init: Path, save_total_limit: int, stage: str) -> None:
    """Stop before training, not at the first checkpoint, when the disk cannot hold the run.

    A full disk shows up deep in a run as torch's `unexpected pos ... vs ...` while saving a
    checkpoint (seen on a default run, 16 minutes into SFT)."""
    need = needed_bytes(init, save_total_limit)
    where = Path(output_dir).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < need:
        raise TrainingError(
            f"{stage} needs about {need / 1e9:.1f} GB free for its checkpoints and final model "
            f"({save_total_limit} checkpoints of the {init} weights with their optimizer state), and the disk "
            f"of {where} has {free / 1e9:.1f} GB: free space (old clones, `dvc gc -w`, mlartifacts/), "
            f"or lower {stage}.save_total_limit where the stage has one"
        )
