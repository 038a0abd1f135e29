#!/usr/bin/env bash
# The ablation grid of the ToolRL paper as queued DVC experiments, run one at a time:
#   bash infra/grid.sh [variant ...]        # default: coarse equal_max length; `none`: no variant
#   GRID_COLD=1 bash infra/grid.sh          # also GRPO cold from the base model (grpo.init=base)
#   GRID_POOLED=1 bash infra/grid.sh        # also the TRM's naive pooled advantage (trm.grpo.advantage=pooled)
# Each variant is an experiment `dvc exp run --queue -S grid.variants=[<v>]` on top of the workspace's
# params: it trains the stage grpo_variant@<v> (the grpo stage with that reward, params `grid`) and
# evaluates it beside the baseline's models, so its report pairs it with the default reward's GRPO on
# the same cases. GRID_COLD and GRID_POOLED reproduce only their stage and `evaluate` (--single-item): sft,
# the TRM and the rest stay the baseline's. (All variants in one run, without a queue: the `grid` profile,
# or `make run ARGS="-S 'grid.variants=[coarse, strict_match]'"`.) Needs a baseline
# whose outputs are in the DVC cache (`make run` first). Follow with `dvc queue status`,
# `dvc queue logs <name>`; compare with `dvc exp show` / `dvc metrics diff` and in MLflow (the runs
# carry the tag dvc.exp_name). `make grid` calls this with the venv first on PATH. The baseline
# must be committed (its dvc.lock): queued experiments start from the last commit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
variants=("$@")
# two_stage switches at step 30 and dynamic_* schedule over the run: meaningful with grpo.max_steps >= 60.
[ ${#variants[@]} -gt 0 ] || variants=(coarse equal_max length)
[ "${variants[*]}" != "none" ] || variants=()
known=$(python -c "import toolrl.rewards; from toolrl.rewards.registry import VARIANTS; print(*VARIANTS, sep='\n')")
for v in "${variants[@]}"; do
  if ! grep -qxF -- "$v" <<<"$known"; then
    echo "grid: unknown reward variant '$v'; \`toolrl reward variants\` lists them" >&2; exit 2
  fi
done
# Queued experiments start from the last git commit plus the changes to tracked files: a baseline's
# dvc.lock that is not committed is left behind, and every queued run fails on missing inputs.
if ! git ls-files --error-unmatch dvc.lock >/dev/null 2>&1 || ! git diff --quiet HEAD -- dvc.lock; then
  echo "grid: the baseline's dvc.lock is not committed, and queued experiments start from the last commit." >&2
  echo "      Run the baseline (make run), then commit it: git add dvc.lock params.yaml && git commit -m baseline" >&2
  exit 2
fi
# Queued experiments run in temporary copies of the project: MLflow's store and the evaluation's
# completion cache must be absolute paths, or their results stay in the copies.
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  eval "$(bash infra/services.sh env 2>/dev/null | sed 's/^/export /')"
fi
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlruns.db}
cache=$(python -c "from pathlib import Path; from toolrl.config import load_params
print(Path(load_params('params.yaml').evaluate.cache_dir).resolve())")
existing=$(dvc exp list --names-only 2>/dev/null || true)
queue() {  # name, stage to rerun alone with evaluate (or - for what the overrides change), overrides...
  local name=$1 stage=$2; shift 2
  if grep -qxF -- "$name" <<<"$existing"; then
    echo "skipped $name: that experiment exists (\`dvc exp remove $name\` to run it again)"; return
  fi
  local args=()
  # Ablation models are not registered: the registry's aliases stay on the baseline's models.
  for kv in "$@" "evaluate.cache_dir=$cache" tracking.register_models=false; do args+=(-S "$kv"); done
  if [ "$stage" = - ]; then
    dvc exp run --queue --name "$name" "${args[@]}"
  else
    dvc exp run --queue --name "$name" "${args[@]}" --single-item "$stage" evaluate
  fi
  echo "queued $name: $*"
}
if [ "${GRID_POOLED:-0}" = 1 ]; then queue grpo-trm-pooled grpo_trm trm.grpo.advantage=pooled; fi
if [ "${GRID_COLD:-0}" = 1 ]; then queue grpo-cold grpo grpo.init=base; fi
for v in "${variants[@]}"; do queue "grpo-$v" - "grid.variants=[$v]"; done
dvc queue start --jobs 1 >/dev/null
echo "running one at a time (MLflow: $MLFLOW_TRACKING_URI); \`dvc queue status\` to follow"
