"""Stopping a process group (DVC and the stage it runs) in the order that lets each member clean up.

The pipeline flow starts DVC in its own process group; under DVC run the stage process
(`python -m flows.<stage>`) and, for multi-process training, its launcher's workers. A stage reports
to a Prefect API: the pipeline's (its temporary server, through PREFECT_API_URL), or, started on
its own, a temporary server of its own, a child in the same group. A SIGTERM to the whole group at
once went wrong both ways:
- DVC, whose SIGTERM handler is the default one, died at once. The flow, waiting on DVC alone,
  went on to exit and stop the pipeline's server while the stage was still reporting its crash to
  it. The stage, orphaned, retried against a dead API and outlived the pipeline (seen stopping the
  default run during `evaluate`).
- A stage's own server died with it, with the same retries.
So:

1. SIGTERM to the stage side only: every member but DVC (the group leader, unless it runs nothing),
   Prefect's temporary servers and the shell DVC runs the command in (`$SHELL -c cmd`; dash, the
   /bin/sh of Debian, does not exec its last command: signalled, it would die at once with -15 and
   DVC would see a killed stage while the stage was still reporting; left alone, it exits with the
   stage's 143). A stage exits with 143 once it has ended its MLflow run and
   reported its flow run; an own server is stopped by its exit hook. DVC sees a failed command and
   exits as on any failure (a workspace experiment returns to its branch).
2. If DVC had no stage running, or anything is still there after the grace period: SIGTERM to the
   whole group.
3. SIGKILL to whatever of the group is left, orphans included (waiting on DVC alone would miss them).

Members are read from /proc; where there is none (macOS) every step signals the whole group.

`OutputLines` and `log_record` turn what the group writes into the pipeline's log lines: a progress
bar as a few lines rather than one per update, a stage's own log line without a second timestamp.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Prefect's temporary API server: `python -m uvicorn ... prefect.server.api.server:create_app`
PREFECT_SERVER_MARK = "prefect.server.api.server:create_app"
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "ash"})


@dataclass(frozen=True)
class Member:
    pid: int
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)

    @property
    def is_shell_wrapper(self) -> bool:
        """A shell running a command string, as DVC runs a stage's `cmd`: `$SHELL [opts] -c cmd`."""
        return bool(self.argv) and Path(self.argv[0]).name in SHELLS and "-c" in self.argv[1:]


def group_members(pgid: int) -> list[Member] | None:
    """Live (not zombie) processes of process group `pgid`; None where /proc cannot say."""
    if not (PROC / "self" / "stat").exists():
        return None
    members = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # the command name, in parentheses, may hold spaces: split after its closing one
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[2]) != pgid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):  # the process ended while being read
            continue
        members.append(Member(int(stat.parent.name), tuple(a for a in argv if a)))
    return members


def group_alive(pgid: int) -> bool:
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_group(proc: subprocess.Popen, deadline: float, poll_s: float = 0.2) -> bool:
    """Reap the leader when it exits; True once the whole group is gone, False at the deadline."""
    while True:
        proc.poll()
        if proc.returncode is not None and not group_alive(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def stop_group(proc: subprocess.Popen, grace_s: float = 30.0, term_all_s: float = 10.0) -> None:
    """Stop the process group led by `proc` (started with `start_new_session=True`); see the module doc."""
    pgid = proc.pid
    members = group_members(pgid)
    if members is None:
        _killpg(pgid, signal.SIGTERM)
    else:
        # not the temporary servers; not DVC or its shell either while they run a stage (they exit
        # when the stage does, with its exit code)
        others = [m for m in members if PREFECT_SERVER_MARK not in m.cmdline]
        stage_side = [m.pid for m in others if m.pid != pgid and not m.is_shell_wrapper]
        _signal(stage_side or [m.pid for m in others], signal.SIGTERM)
    if _wait_group(proc, time.monotonic() + grace_s):
        return
    _killpg(pgid, signal.SIGTERM)
    if _wait_group(proc, time.monotonic() + term_all_s):
        return
    _killpg(pgid, signal.SIGKILL)
    _wait_group(proc, time.monotonic() + 10.0)


# ---------------------------------------------------------------- a process's output, as log lines

# How often a line rewritten in place (a progress bar) is logged while it is being rewritten.
PROGRESS_EVERY_S = 60.0
_LINE_END = re.compile(r"(\r\n|\r|\n)")
# A line of Prefect's console log, as a stage flow writes it: "19:04:41.301 | INFO    | Flow run 'x' - text"
_PREFECT_LINE = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} \| (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) *\| (?P<rest>.*)$")


class OutputLines:
    """A process's output (bytes, as read from its pipe) cut into the lines worth logging.

    A progress bar (tqdm, on a stage's stderr) rewrites its line in place with carriage returns: on a
    terminal one line that moves, read line by line one line per update. Here such a line is logged
    as its first state, then at most once every `every_s` seconds while it moves (a long bar shows it
    is alive), then as its final state when its newline comes; never the same text twice in a row.
    What the process writes is unchanged: run in a terminal, its bars still update in place. Blank
    lines are dropped.
    """

    def __init__(self, every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text after the last line end seen
        self._state: str | None = None  # the current line's latest complete text
        self._said: str | None = None  # what was last logged of the current line
        self._said_at = -math.inf

    def feed(self, data: bytes) -> list[str]:
        """The lines to log now, given the next bytes of output."""
        return self._cut(self._decoder.decode(data))

    def close(self) -> list[str]:
        """The lines still to log at the end of the output (a last line without a newline)."""
        return self._cut(self._decoder.decode(b"", final=True) + "\n")

    def _cut(self, text: str) -> list[str]:
        parts = _LINE_END.split(self._pending + text)
        self._pending = parts[-1]
        out: list[str] = []
        now = self.clock()
        for segment, end in zip(parts[0:-1:2], parts[1::2], strict=True):
            if segment.strip():
                self._state = segment.rstrip()
            if end == "\r":  # rewritten in place: say it now only if it is time
                if self._state is not None and self._state != self._said and now - self._said_at >= self.every_s:
                    out.append(self._state)
                    self._said, self._said_at = self._state, now
                continue
            if self._state is not None and self._state != self._said:  # the line is done: its final text
                out.append(self._state)
            self._state, self._said, self._said_at = None, None, -math.inf
        return out


def log_record(line: str) -> tuple[int, str]:
    """(logging level, message) for a line of a stage's output. A stage flow's own Prefect log line
    ("<time> | <LEVEL> | Flow run 'x' - text") keeps its level and source but not its time, which the
    forwarding log record has already: one timestamp and one level per line. Other lines are INFO."""
    match = _PREFECT_LINE.match(line)
    if match is None:
        return logging.INFO, line
    return logging.getLevelName(match["level"]), match["rest"]
