"""The TRM in MLflow: logged as a pyfunc model (the TRM folder as its artifact) and registered.

MLflow's transformers flavor knows pipelines (text generation, token classification as NER); a TRM
is neither, so it is a small pyfunc: `predict` takes rows with `prompt` (chat messages) and
`completion` (text or chat messages, read by `formats.assistant_text`) and returns the score of each
call. Loadable offline with
`mlflow.pyfunc.load_model("models:/toolrl-trm@candidate")`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from toolrl.config import TrackingParams

ARTIFACT = "trm"


class TrmPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from toolrl.trm.score import TrmScorer

        self.scorer = TrmScorer(context.artifacts[ARTIFACT])

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> list[list[float]]:
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        from toolrl.formats import assistant_text

        texts = [assistant_text(r["completion"]) for r in rows]
        _, scores = self.scorer.score_completions([r["prompt"] for r in rows], texts)
        return scores


@contextmanager
def model_files(folder: str | Path) -> Iterator[Path]:
    """The TRM folder without its Trainer checkpoints, as a temporary folder beside it holding hard links to
    its files (MLflow refuses symbolic links that leave the folder; a copy where links cannot be made). The
    checkpoints only serve a resume and are deleted once the stage is done; logged, they made a default
    run's TRM model 3.6 GB in MLflow instead of 0.5 (two checkpoints with Adam's state)."""
    import shutil

    from toolrl.training.checkpoints import CHECKPOINTS

    folder = Path(folder)
    for stale in folder.parent.glob(f".{folder.name}-log-*"):  # left by a process killed while logging
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-log-") as tmp:
        view = Path(tmp) / folder.name
        shutil.copytree(folder, view, ignore=shutil.ignore_patterns(CHECKPOINTS), copy_function=_link_or_copy)
        yield view


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def log_trm(folder: str | Path, register_as: str | None, tracking: TrackingParams) -> dict[str, Any]:
    """Log the TRM folder (its model files) as a pyfunc model on the active run; register it (alias `candidate`)."""
    import mlflow

    import toolrl
    from toolrl.training.publish import pip_requirements, registered

    name = register_as if tracking.register_models else None
    with model_files(folder) as files:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=TrmPyfunc(),
            artifacts={ARTIFACT: str(files)},
            pip_requirements=pip_requirements(),
            code_paths=[str(Path(toolrl.__file__).parent)],  # the scorer's code travels with the model
            registered_model_name=name,
        )
    return registered(info, name)
