"""What Prefect, DVC and MLflow add on top of calling the stage functions directly (smoke profile).

    .venv/bin/python bench/pipeline_overhead.py [--markdown]

Three timings, each in a fresh throw-away git + DVC copy of the project (nothing shared but the OS
file cache and ~/.cache/toolrl):

1. direct:   one Python process calls each wired stage's domain function in DAG order
             (prepare_base_model, curate, run_sft, run_grpo, run_evaluation, ...) on the smoke params.
             Domain functions that open their own MLflow run still do (that logging is part of the
             stage, not of the orchestration), into a throw-away store.
2. pipeline: `python -m flows.pipeline --workspace` on the same params: a Prefect flow, a parent MLflow
             run, `dvc exp run`, one process and one Prefect flow run per stage.
3. no-op:    `dvc repro` right after (2), and the pipeline flow again: nothing to do.
4. breakdown: the import time of one stage process (torch, transformers, TRL, MLflow, Prefect) per
             stage, and the start of Prefect's temporary server.

HF_HUB_OFFLINE=1 in both runs (no hub here): MLflow's model-card lookup would otherwise retry for
about 45 s per logged model in both, inflating the denominator.

Overhead = (pipeline - direct) / direct. Targets: under 10 % and a no-op `dvc repro` under 10 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from orchestration_repo import base_env, make_repo  # noqa: E402

# Stage -> the domain call the stage's flow makes (imported lazily, in DAG order).
DIRECT = {
    "prepare_model": "from toolrl.models import prepare_base_model as f; f(params.model)",
    "curate": "from toolrl.data.curate import curate as f; f(params)",
    "sft": "from toolrl.training.sft import run_sft as f; f(params)",
    "grpo": "from toolrl.training.grpo import run_grpo as f; f(params)",
    "trm_data": "from toolrl.trm.data import run_trm_data as f; f(params)",
    "trm": "from toolrl.trm.trainer import run_trm as f; f(params)",
    "grpo_trm": "from toolrl.trm.grpo import run_grpo_trm as f; f(params)",
    "evaluate": "from toolrl.evaluation.stage import run_evaluation as f; f(params, show_progress=False)",
}

SERVER_SCRIPT = """
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    client.hello()
"""

DIRECT_SCRIPT = """
import time, sys
t0 = time.perf_counter()
from toolrl.config import load_params
params = load_params("params.yaml")
times = {{}}
for stage, call in {calls!r}:
    t = time.perf_counter()
    exec(call, {{"params": params}})
    times[stage] = time.perf_counter() - t
print("DIRECT", time.perf_counter() - t0, times)
"""


def smoke_params(tmp: Path) -> str:
    from dvc.utils.hydra import apply_overrides

    from toolrl.profiles import dvc_set_args, profile_overrides

    target = tmp / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    apply_overrides(target, dvc_set_args(profile_overrides("smoke", ROOT), target))
    return target.read_text()


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return elapsed, out.stdout + out.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="toolrl-bench-") as tmp_name:
        tmp = Path(tmp_name)
        text = smoke_params(tmp)
        env = base_env(tmp / "prefect-home")
        pipe_env = base_env(tmp / "prefect-home")
        # Both copies are made up front, so the two runs see the same code and dvc.yaml.
        direct_repo = make_repo(tmp / "direct", env, params_text=text)
        pipe_repo = make_repo(tmp / "pipeline", pipe_env, params_text=text)
        stages = list(yaml.safe_load((direct_repo / "dvc.yaml").read_text())["stages"])

        direct_env = dict(env, MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'direct-mlruns.db'}")
        calls = [(s, DIRECT[s]) for s in stages]
        t_direct, out = timed([sys.executable, "-c", DIRECT_SCRIPT.format(calls=calls)], direct_repo, direct_env)
        per_stage = re.search(r"DIRECT [\d.]+ (\{.*\})", out).group(1)

        t_pipeline, out = timed([sys.executable, "-m", "flows.pipeline", "--workspace"], pipe_repo, pipe_env)
        assert "stages ran : " in out, out[-2000:]
        t_noop_repro, out = timed([sys.executable, "-m", "dvc", "repro"], pipe_repo, pipe_env)
        assert "Running stage" not in out, out[-2000:]
        t_noop_pipeline, _ = timed([sys.executable, "-m", "flows.pipeline", "--workspace"], pipe_repo, pipe_env)
        # Where the overhead goes: every stage process imports torch, transformers, TRL, MLflow and
        # Prefect again (the direct run pays that once), and Prefect's temporary server starts once.
        t_imports = [timed([sys.executable, "-c", f"import flows.{s}, torch, transformers, trl, mlflow"],
                           pipe_repo, pipe_env)[0] for s in stages]
        t_server, _ = timed([sys.executable, "-c", SERVER_SCRIPT], pipe_repo, pipe_env)

    overhead = (t_pipeline - t_direct) / t_direct
    rows = [
        ("stages", ", ".join(stages)),
        ("direct domain calls, one process (s)", f"{t_direct:.1f}"),
        ("per stage, direct (s)", per_stage),
        ("pipeline flow: Prefect + MLflow parent + dvc exp run (s)", f"{t_pipeline:.1f}"),
        ("overhead", f"{t_pipeline - t_direct:.1f} s = {overhead:.0%} (target < 10 %)"),
        ("stage process imports, sum over stages (s)", f"{sum(t_imports):.1f} ({len(stages)} processes, "
                                                       f"{min(t_imports):.1f}-{max(t_imports):.1f} s each)"),
        ("Prefect temporary server start + one API call (s)", f"{t_server:.1f}"),
        ("no-op `dvc repro` (s)", f"{t_noop_repro:.2f} (target < 10 s)"),
        ("no-op pipeline flow (s)", f"{t_noop_pipeline:.1f}"),
        ("cpu", f"{os.cpu_count()} cores"),
    ]
    if args.markdown:
        print("| measure | value |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:58s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
