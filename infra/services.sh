#!/usr/bin/env bash
# Local services, on 127.0.0.1 only: a Prefect server (UI + API) and an MLflow tracking server
# (SQLite backend = the project's embedded store mlruns.db, artifacts under mlartifacts/), plus the
# process that serves the Prefect deployments. Each is started in its own process group, its PID
# written under .services/, and stopped by that PID (`stop` kills the group it started, nothing else).
#
#   bash infra/services.sh start      # Prefect + MLflow servers (make services)
#   bash infra/services.sh serve      # serve the deployments in the background (make serve)
#   bash infra/services.sh stop       # stop all three (make stop)
#   bash infra/services.sh status
#   bash infra/services.sh env        # KEY=VALUE lines for the services that are up
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=.services
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
HOST=127.0.0.1
PREFECT_PORT=${PREFECT_PORT:-4200}
MLFLOW_PORT=${MLFLOW_PORT:-5000}

# Prefect's own state (its SQLite database) stays in the project, and it sends no analytics.
export PREFECT_HOME="$ROOT/$DIR/prefect-home"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_UI_API_URL="http://$HOST:$PREFECT_PORT/api"

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

wait_http() {  # url, name, log, seconds
  local url=$1 name=$2 log=$3 limit=${4:-120} i=0
  until "$PY" -c "import sys, httpx; sys.exit(0 if httpx.get('$url', timeout=2).status_code < 500 else 1)" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge "$limit" ] || ! alive "$name"; then
      echo "[services] $name did not come up; last lines of $log:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    sleep 1
  done
}

start_one() {  # name, log, command...
  local name=$1 log=$2
  shift 2
  mkdir -p "$DIR"
  if alive "$name"; then
    echo "[services] $name already running (pid $(cat "$DIR/$name.pid"))"
    return 0
  fi
  # setsid: the service and its workers form one process group, whose id is the PID we record.
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! > "$DIR/$name.pid"
}

start() {
  start_one prefect "$DIR/prefect.log" "$BIN/prefect" server start --host "$HOST" --port "$PREFECT_PORT"
  start_one mlflow "$DIR/mlflow.log" "$BIN/mlflow" server --host "$HOST" --port "$MLFLOW_PORT" \
    --backend-store-uri "sqlite:///$ROOT/mlruns.db" --artifacts-destination "$ROOT/mlartifacts"
  wait_http "http://$HOST:$PREFECT_PORT/api/health" prefect "$DIR/prefect.log"
  wait_http "http://$HOST:$MLFLOW_PORT/health" mlflow "$DIR/mlflow.log"
  echo "[services] Prefect UI  http://$HOST:$PREFECT_PORT  (pid $(cat $DIR/prefect.pid), log $DIR/prefect.log)"
  echo "[services] MLflow UI   http://$HOST:$MLFLOW_PORT  (pid $(cat $DIR/mlflow.pid), log $DIR/mlflow.log)"
  echo "[services] make serve: serve the deployments; make stop: stop everything"
}

serve() {
  mkdir -p "$DIR"
  if ! alive prefect; then
    echo "[services] the Prefect server is not running: run \`make services\` first" >&2
    exit 2
  fi
  local extra=(PREFECT_API_URL="http://$HOST:$PREFECT_PORT/api" PATH="$ROOT/$BIN:$PATH")
  if alive mlflow; then extra+=(MLFLOW_TRACKING_URI="http://$HOST:$MLFLOW_PORT"); fi
  env "${extra[@]}" bash -c "exec setsid '$PY' -m flows.deployments >'$DIR/serve.log' 2>&1 </dev/null" &
  echo $! > "$DIR/serve.pid"
  local i=0
  until grep -q "Your deployments are being served" "$DIR/serve.log" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -ge 120 ] || ! alive serve; then
      echo "[services] serving the deployments failed; last lines of $DIR/serve.log:" >&2
      tail -n 20 "$DIR/serve.log" >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "[services] deployments served (pid $(cat $DIR/serve.pid), log $DIR/serve.log):"
  echo "[services]   http://$HOST:$PREFECT_PORT/deployments  -> pipeline/default, pipeline/smoke: Run"
}

stop() {
  for name in serve mlflow prefect; do
    if alive "$name"; then
      pid=$(cat "$DIR/$name.pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "[services] stopped $name (pid $pid)"
    fi
    rm -f "$DIR/$name.pid"
  done
}

status() {
  for name in prefect mlflow serve; do
    if alive "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

env_lines() {
  if alive prefect; then echo "PREFECT_API_URL=http://$HOST:$PREFECT_PORT/api"; fi
  if alive mlflow; then echo "MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT"; fi
}

case "${1:-status}" in
  start) start ;;
  serve) serve ;;
  stop) stop ;;
  status) status ;;
  env) env_lines ;;
  *) echo "usage: $0 start|serve|stop|status|env" >&2; exit 2 ;;
esac
