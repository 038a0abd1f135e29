"""Helpers for orchestration tests: a throw-away git + DVC copy of the project, real servers.

Tests never touch the real checkout's DVC state: they copy the files DVC needs into a temp dir,
`git init` + `dvc init` there, commit, and run DVC in that copy. Every process a helper starts is
stopped by the caller through `stop()` (kills the process group it started, by PID).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
COPIED = ["src", "flows", "tasks", "configs", "dvc.yaml", "params.yaml", ".gitignore", ".dvcignore",
          "models/seeds/README.md", "models/grid/README.md"]
BIN = Path(sys.executable).parent


def base_env(prefect_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        # No hub at run time here: fail fast instead of retrying (MLflow looks up model cards).
        "HF_HUB_OFFLINE": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    })
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "TOOLRL_PARENT_RUN_ID", "DVC_EXP_NAME"):
        env.pop(key, None)
    return env


def make_repo(dest: Path, env: dict[str, str], params_text: str | None = None) -> Path:
    """A committed git + DVC repository holding a copy of the project's pipeline files.

    Sets PYTHONPATH in `env` to the copy's src/, for the processes the caller starts there."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if params_text is not None:
        (dest / "params.yaml").write_text(params_text)
    # Stage processes import the copy's code (what DVC hashed), not the checkout's editable install.
    env["PYTHONPATH"] = str(dest / "src")
    run(["git", "init", "-q", "-b", "main"], dest, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest, env)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-q", "-m", "pipeline under test"], dest, env)
    return dest


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout[-3000:]}\n"
                             f"{out.stderr[-3000:]}")
    return out


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A Prefect server on a free loopback port (what `make services` starts), its PREFECT_HOME at
    `home`; yields its API URL. Stage processes pointed at it (PREFECT_API_URL) skip starting a
    temporary server each (~20 s a stage on 2 cores, docs/BENCHMARKS.md "Pipeline overhead")."""
    port = free_port()
    log = home / "server.log"
    proc = start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 home, base_env(home), log)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", proc, log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop(proc)


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a process in its own process group (so stop() also ends its children)."""
    fh = log.open("w")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process for {url} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"{url} not up after {timeout}s:\n{log.read_text()[-3000:]}")


def wait_for_text(log: Path, text: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {text!r}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not seen after {timeout}s:\n{log.read_text()[-3000:]}")
