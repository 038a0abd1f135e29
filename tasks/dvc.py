"""Tasks that drive DVC: run the DAG as an experiment, read an experiment's results.

`dvc exp run` is not retried: it runs training stages, where a failure repeats. Its output is
streamed line by line into the Prefect log, so the UI shows each stage as DVC starts or skips it; a
progress bar comes as a few lines, not one per update, and a stage's own Prefect log line keeps its
level but not its second timestamp (`toolrl.processes.OutputLines`, `log_record`).

What DVC offers as a Python API is used as such: whether git has a commit to start an experiment
from (`Repo.scm.no_commits`, DVC's own check), an experiment's commit (`resolve_name`, DVC's lookup
of `refs/exps`), metrics (`Repo.metrics.show`). The run itself stays a `dvc exp run` process (see
`run_streamed`), and what it ran is read from its output, the one place DVC says it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger, task

from toolrl.processes import OutputLines, log_record, stop_group

# What a `dvc exp run` process did with each stage, as it says on its console. DVC has no API for it:
# `Repo.status()` before the run tells what is stale, not which stale stage then ran and which came
# from the run cache, and the run must be a separate process (`run_streamed`), so its output is what
# there is. The three are DVC 3's log lines (dvc/stage/run.py, dvc/stage/__init__.py, dvc/stage/cache.py).
RAN = re.compile(r"Running stage '([^']+)'")
SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")
RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")


class DvcError(RuntimeError):
    """DVC could not run the pipeline (no git commit for an experiment, or a stage failed)."""


@dataclass
class DvcRun:
    command: list[str]
    returncode: int
    ran: list[str] = field(default_factory=list)  # stages whose command ran
    skipped: list[str] = field(default_factory=list)  # unchanged stages
    restored: list[str] = field(default_factory=list)  # outputs restored from DVC's run cache
    tail: list[str] = field(default_factory=list)  # last lines of output, for the error message


def dvc_command() -> list[str]:
    """DVC of this interpreter's environment (the venv), as a module: no reliance on PATH."""
    return [sys.executable, "-m", "dvc"]


def stage_process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment DVC passes to stage commands: `python` must be this venv's interpreter."""
    env = dict(os.environ)
    env.update(extra)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def git_has_commit(root: str | Path) -> bool:
    """Whether git has a commit for an experiment to start from: DVC's own check (`scm.no_commits`)."""
    from dvc.repo import Repo
    from dvc.scm import NoSCM

    with Repo(str(root)) as repo:
        return not isinstance(repo.scm, NoSCM) and not repo.scm.no_commits


def run_streamed(command: list[str], cwd: str | Path, env: dict[str, str]) -> DvcRun:
    """Run a DVC command, logging its output line by line (`OutputLines`: a progress bar as a few
    lines, a stage's own log line once), and note which stages ran, were skipped or restored.

    A process, not DVC's Python API (`Repo.experiments.run`): stopping a run must stop the stage
    first, then DVC, then anything left (`toolrl.processes.stop_group`, docs/ORCHESTRATION.md), which
    needs DVC in a process group of its own; in this process, DVC would die with the flow and leave
    its stage orphaned. The output is also what the UI shows as the run's log."""
    logger = get_run_logger()
    logger.info("$ %s", " ".join(command[2:] if command[:3] == dvc_command() else command))
    result = DvcRun(command=command, returncode=-1)
    lines = OutputLines()
    # Its own process group: if this flow is stopped, DVC and the stage process it runs stop with it.
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True) as proc:
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(65536):
                for line in lines.feed(chunk):
                    _log(logger, line, result)
            for line in lines.close():
                _log(logger, line, result)
            result.returncode = proc.wait()
        except BaseException:  # SIGTERM (as SystemExit), Ctrl-C, a crash: stop the group, then re-raise
            # Keep reading while the group stops: its last words (the stage's crash report) go to the
            # log, and a full pipe would block the very writes the stage needs to finish exiting.
            drain = threading.Thread(target=_drain, args=(proc.stdout, lines, logger, result), daemon=True)
            drain.start()
            stop_group(proc)
            drain.join(timeout=5)
            raise
    return result


def _log(logger, line: str, result: DvcRun) -> None:
    level, message = log_record(line)
    logger.log(level, "%s", message)
    result.tail = [*result.tail[-39:], message]
    for pattern, bucket in ((RAN, result.ran), (SKIPPED, result.skipped), (RESTORED, result.restored)):
        match = pattern.search(message)
        if match and match.group(1) not in bucket:
            bucket.append(match.group(1))


def _drain(stream, lines: OutputLines, logger, result: DvcRun) -> None:
    try:
        while chunk := stream.read1(65536):
            for line in lines.feed(chunk):
                _log(logger, line, result)
        for line in lines.close():
            _log(logger, line, result)
    except (OSError, ValueError):  # the pipe closed under us: nothing more to read
        pass


@task(name="dvc-exp-run")
def dvc_exp_run(root: str, set_args: list[str], targets: list[str], name: str | None, temp: bool,
                env: dict[str, str], force: bool = False) -> DvcRun:
    """`dvc exp run` (or `dvc repro` when git has no commit to record an experiment against)."""
    if git_has_commit(root):
        command = [*dvc_command(), "exp", "run"]
        if name:
            command += ["--name", name]
        if temp:
            command.append("--temp")
        for arg in set_args:
            command += ["--set-param", arg]
    else:
        if set_args or temp:
            raise DvcError(
                "DVC experiments need a git commit to start from, and this repository has none: "
                "commit first (`git add -A && git commit -m ...`), or run without a profile or overrides"
            )
        get_run_logger().warning("git has no commit yet: running `dvc repro` (not recorded as an experiment)")
        command = [*dvc_command(), "repro"]
    if force:
        command.append("--force")
    command += targets
    result = run_streamed(command, root, stage_process_env(env))
    if result.returncode != 0:
        tail = "\n".join(result.tail[-15:])
        raise DvcError(f"{' '.join(command[2:])} failed (exit {result.returncode}):\n{tail}")
    return result


def exp_rev(root: str | Path, name: str) -> str | None:
    """The commit of experiment `name` (refs/exps/<baseline>/<name>), found by DVC's own lookup
    (`resolve_name`, as `dvc exp apply NAME` does): milliseconds, where `dvc exp show` would collect
    every experiment. None when there is none, or when several baselines have one of that name and
    none is the current commit (DVC calls that ambiguous)."""
    from dvc.repo import Repo
    from dvc.repo.experiments.exceptions import AmbiguousExpRefInfo
    from dvc.repo.experiments.utils import resolve_name
    from dvc.scm import NoSCM

    with Repo(str(root)) as repo:
        if isinstance(repo.scm, NoSCM) or repo.scm.no_commits:
            return None
        try:
            ref = resolve_name(repo.scm, name).get(name)
        except AmbiguousExpRefInfo:
            return None
        return repo.scm.get_ref(str(ref)) if ref else None


def read_metrics(root: str | Path, rev: str | None = None) -> dict[str, dict]:
    """Metrics file -> its contents, at `rev` (an experiment's commit) or in the workspace, through
    DVC (which reads cached metrics of a temp experiment from its cache)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        shown = repo.metrics.show(revs=[rev]) if rev else repo.metrics.show()
    entry = shown.get(rev) if rev else (shown.get("") or shown.get("workspace"))
    files = (entry or {}).get("data") or {}
    return {path: body["data"] for path, body in files.items() if isinstance(body, dict) and "data" in body}


@task(name="dvc-exp-results")
def dvc_exp_results(root: str, name: str, temp: bool) -> dict:
    """The experiment's commit and metrics (a temp run's from the experiment, else the workspace's)."""
    rev = exp_rev(root, name)
    try:
        metrics = read_metrics(root, rev if temp else None) if (rev or not temp) else {}
    except Exception as exc:  # results are a summary: never fail a finished pipeline over them
        get_run_logger().warning("could not read DVC metrics: %s", exc)
        metrics = {}
    return {"rev": rev, "name": name, "metrics": metrics}
