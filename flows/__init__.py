"""Prefect flows: one per stage (`python -m flows.<stage>`), the end-to-end `pipeline`, deployments.

Flows are thin: they load params, call tasks (which call `toolrl`), open the stage's MLflow run and
publish Prefect artifacts. The logic lives in `src/toolrl/`.
"""

import os

# Prefect's analytics are off for every flow process and the temporary server it may start (set
# before Prefect is imported; an explicit setting in the environment still wins).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
