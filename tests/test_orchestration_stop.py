"""Stopping a run: SIGTERM to the pipeline flow (a stopped `make run`, a run cancelled in the Prefect UI)
leaves nothing running and lets each process report how it ended.

Real processes throughout: a Prefect flow with its temporary server, `dvc exp run` in a throw-away
repository, a stage flow under it. Every process a test starts is killed in its `finally`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolrl.processes import PREFECT_SERVER_MARK, Member, group_members, stop_group

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_file(path: Path, proc: subprocess.Popen, what: str, timeout: float = 240) -> str:
    """The text `what` writes into `path` once it has started, while `proc` lives."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, f"{what} never started"
        time.sleep(0.2)
    return path.read_text()


def _wait_for_pid(pid_file: Path, proc: subprocess.Popen, what: str) -> int:
    return int(_wait_for_file(pid_file, proc, what))


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _env(tmp_path: Path) -> dict[str, str]:
    from orchestration_repo import base_env

    env = base_env(tmp_path / "prefect")
    env["PYTHONPATH"] = f"{ROOT}{':' + env['PYTHONPATH'] if env.get('PYTHONPATH') else ''}"
    return env


# ---------------------------------------------------------------- the group stopper on its own


ORPHAN_MAKER = """
import os, signal, subprocess, sys, time
# a child that ignores SIGTERM and outlives its parent, as a stage once did after DVC died under it
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open(%r, 'w').write('x'); time.sleep(600)"])
time.sleep(600)
"""


def test_stop_group_kills_a_member_that_ignores_sigterm_after_its_leader_is_gone(tmp_path):
    """Waiting on the leader alone would return as soon as it died and leave the orphan running."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN_MAKER % str(ready)], start_new_session=True)
    members: list[int] = []
    try:
        _wait_for_file(ready, proc, "the child")
        members = [m.pid for m in group_members(proc.pid)]
        assert proc.pid in members and len(members) == 2, members
        stop_group(proc, grace_s=1.0, term_all_s=1.0)
        assert proc.returncode is not None
        assert not [pid for pid in members if _alive(pid)]
        assert group_members(proc.pid) == []
    finally:
        _kill_all({proc.pid, *members})


GRACEFUL = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as a stage: clean up, then exit with 143
pathlib.Path(sys.argv[1]).write_text("x")
time.sleep(600)
"""


def test_stop_group_leaves_the_shell_alone_so_it_exits_with_its_commands_code(tmp_path):
    """DVC runs a stage as `$SHELL -c cmd`. A shell that does not exec its command (dash, or any shell
    given more than one command) dies at once on SIGTERM, and DVC would see -15 while the stage was
    still reporting its crash; left alone, it passes on the stage's own exit code."""
    ready = tmp_path / "ready"
    script = f"{sys.executable} -c '{GRACEFUL}' {ready}; exit $?"  # `; exit $?`: no shell execs this
    proc = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    members: list[int] = []
    try:
        _wait_for_file(ready, proc, "the command")
        shell, command = sorted(group_members(proc.pid), key=lambda m: m.pid != proc.pid)
        members = [shell.pid, command.pid]
        assert shell.is_shell_wrapper and not command.is_shell_wrapper
        stop_group(proc, grace_s=30.0, term_all_s=1.0)
        assert proc.returncode == 143
    finally:
        _kill_all({proc.pid, *members})


def test_a_shell_wrapper_is_a_shell_running_a_command_string():
    assert Member(1, ("/bin/sh", "-c", "python -m flows.sft")).is_shell_wrapper
    assert Member(1, ("/usr/bin/bash", "--noprofile", "--norc", "-c", "x")).is_shell_wrapper
    assert not Member(1, ("/bin/bash",)).is_shell_wrapper  # an interactive shell runs no stage
    assert not Member(1, ("python", "-c", "print(1)")).is_shell_wrapper
    assert not Member(1, ()).is_shell_wrapper


def test_group_members_are_the_live_processes_of_that_group_only(tmp_path):
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert [m.pid for m in group_members(proc.pid)] == [proc.pid]
        assert proc.pid not in [m.pid for m in group_members(os.getpgid(0))]
        assert "sleep 60" in group_members(proc.pid)[0].cmdline
        proc.kill()
        proc.wait()
        assert group_members(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- a flow streaming a plain command


STOPPED_FLOW = """
import os, sys, time
from prefect import flow
from flows.common import exit_on_sigterm, prefect_settings
from tasks.dvc import run_streamed

CHILD = "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(600)"

@flow
def long_running(pid_file: str) -> None:
    run_streamed([sys.executable, "-c", CHILD, pid_file], ".", dict(os.environ))

with exit_on_sigterm(), prefect_settings():  # as the stage flows: a patient temporary server
    long_running(sys.argv[1])
"""


def test_a_terminated_flow_stops_its_command_and_prefects_temporary_server(tmp_path):
    """SIGTERM to a flow leaves nothing running: not the command it streams, not Prefect's temporary
    server."""
    pid_file = tmp_path / "child.pid"
    others: set[int] = set()
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_FLOW, str(pid_file)], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        command = _wait_for_pid(pid_file, proc, "the flow's command")
        others = _children(proc.pid)  # Prefect's temporary server, the command's process
        assert len(others) >= 2, others
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in (command, *others)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in (command, *others) if _alive(p)]
    finally:  # on failure too: stop whatever the flow left behind
        if proc.poll() is None:
            proc.kill()
        _kill_all(others | ({int(pid_file.read_text())} if pid_file.exists() and pid_file.read_text() else set()))


# ---------------------------------------------------------------- pipeline -> DVC -> stage flow


STAGE = '''
import os, pathlib, time
from prefect import flow, task
from flows.common import run_stage

@task
def work() -> None:
    pathlib.Path(os.environ["STAGE_PID_FILE"]).write_text(str(os.getpid()))
    while True:  # a training loop: Python between steps, where the SIGTERM handler runs
        time.sleep(0.1)

@flow(name="slow-stage")
def slow(params_path: str = "params.yaml", overrides: list[str] | None = None) -> None:
    work()

if __name__ == "__main__":
    raise SystemExit(run_stage("slow", slow))
'''

DVC_YAML = """
stages:
  slow:
    cmd: python slow_stage.py
    deps: [slow_stage.py]
    outs: [out.txt]
"""

PIPELINE = """
import sys
from prefect import flow
from flows.common import exit_on_sigterm, prefect_settings
from flows.pipeline import _prefect_api_url
from tasks.dvc import dvc_command, run_streamed, stage_process_env

@flow
def pipeline_like(repo: str) -> None:
    # as the pipeline flow: the stages report to this run's Prefect API (its temporary server here)
    env = stage_process_env({"PREFECT_API_URL": _prefect_api_url()})
    run_streamed([*dvc_command(), "exp", "run"], repo, env)

with exit_on_sigterm(), prefect_settings():
    pipeline_like(sys.argv[1])
"""

# A stage's own Prefect log line, as the pipeline logs it: "<time> | INFO | Flow run 'p' - <stage line>"
STAGE_REPORTED = re.compile(r"Flow run '[^']+' - .*Flow run '[^']+' - Finished in state Crashed")


@pytest.mark.slow
def test_a_stopped_pipeline_stops_its_stage_cleanly_and_dvc_returns_to_the_branch(tmp_path):
    """The stage is stopped first, while the pipeline's Prefect API is still up: it reports its flow
    run as crashed (the line reaches the pipeline's log) and exits with 143. DVC then fails the stage
    as it fails any, and a workspace experiment leaves git on its branch. Nothing of the group survives.

    Before: DVC died at once on the group's SIGTERM and the pipeline, which waited for DVC only, went
    on to exit and stop its temporary server while the stage was still reporting to it. The stage,
    orphaned, retried against the dead server and outlived the pipeline."""
    from orchestration_repo import run

    env = _env(tmp_path)
    env["STAGE_PID_FILE"] = str(tmp_path / "stage.pid")
    # DVC runs the stage in $SHELL -c; /bin/sh (dash on Debian, and CI's without a SHELL) does not exec
    # it, so the stage's exit code reaches DVC only through the shell
    env["SHELL"] = "/bin/sh"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "slow_stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo, env)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "slow stage"], repo, env)
    log = tmp_path / "pipeline.log"
    seen: set[int] = set()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", PIPELINE, str(repo)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        stage = _wait_for_pid(tmp_path / "stage.pid", proc, "the stage")
        seen = {stage, *_children(stage), *_children(proc.pid)}  # DVC; the pipeline's server
        dvc = [pid for pid in _children(proc.pid) if "dvc" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(dvc) == 1, seen
        servers = [pid for pid in _children(proc.pid) if PREFECT_SERVER_MARK in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(servers) == 1, "the pipeline should run one temporary Prefect server"
        assert not _children(stage), "the stage should report to the pipeline's server, not start its own"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
        # the pipeline returns only once DVC's whole process group is gone
        assert not [pid for pid in (stage, *dvc, *servers) if _alive(pid)]
        text = log.read_text()
        assert STAGE_REPORTED.search(text), text[-3000:]
        assert "exited with 143" in text, text[-3000:]
        branch = run(["git", "symbolic-ref", "-q", "HEAD"], repo, env).stdout.strip()
        assert branch == "refs/heads/main"
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_all(seen)
