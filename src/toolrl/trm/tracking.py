"""The TRM in MLflow: logged as a pyfunc model (the TRM folder as its artifact) and registered.

MLflow's transformers flavor knows pipelines (text generation, token classification as NER); a TRM
is neither, so it is a small pyfunc: `predict` takes rows with `prompt` (chat messages) and
`completion` (text or chat messages, read by `formats.assistant_text`) and returns the score of each
call. Loadable offline with
`mlflow.pyfunc.load_model("models:/toolrl-trm@candidate")`.
"""

from __future__ import annotations

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


def log_trm(folder: str | Path, register_as: str | None, tracking: TrackingParams) -> dict[str, Any]:
    """Log the TRM folder (its model files) as a pyfunc model on the active run; register it (alias `candidate`)."""
    import mlflow

    import toolrl
    from toolrl.training.publish import pip_requirements, registered

    name = register_as if tracking.register_models else None
    # The folder holds the model files only: its checkpoints wait beside it (toolrl.training.checkpoints).
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=TrmPyfunc(),
        artifacts={ARTIFACT: str(folder)},
        pip_requirements=pip_requirements(),
        code_paths=[str(Path(toolrl.__file__).parent)],  # the scorer's code travels with the model
        registered_model_name=name,
    )
    return registered(info, name)
