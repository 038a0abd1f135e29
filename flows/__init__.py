"""Prefect flows: one per stage (`python -m flows.<stage>`), the end-to-end `pipeline`, deployments.

Flows are thin: they load params, call tasks (which call `toolrl`), open the stage's MLflow run and
publish Prefect artifacts. The logic lives in `src/toolrl/`.
"""
