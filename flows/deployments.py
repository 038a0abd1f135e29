"""Serve the Prefect deployments, so the pipeline appears in the Prefect UI and runs from its button.

    make services && make serve        # or: PREFECT_API_URL=... python -m flows.deployments

Two deployments of the `pipeline` flow: `pipeline/default` (params.yaml as it is; every parameter
can be changed in the UI's "Custom run" form: profile, overrides, stages) and `pipeline/smoke`
(the smoke profile). Single stages are run through the pipeline (`stages: [sft]`), never on their
own, so that DVC records every run and the cache stays shared. Runs go one at a time: the machine
is small and workspace runs share one working tree.
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.pipeline import pipeline

DEPLOYMENTS = {
    "default": ({}, "The whole DAG on params.yaml (the embedded model), through DVC."),
    "smoke": ({"profile": "smoke"}, "The whole DAG on the smoke profile (tiny model, few steps): minutes."),
}


def deployments() -> list[RunnerDeployment]:
    return [
        pipeline.to_deployment(name=name, parameters=parameters, description=description,
                               tags=["toolrl"], concurrency_limit=1)
        for name, (parameters, description) in DEPLOYMENTS.items()
    ]


def main() -> None:
    serve(*deployments(), limit=1)


if __name__ == "__main__":
    main()
