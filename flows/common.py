"""What every stage flow shares: its command line (`python -m flows.<stage> [--params F] [-S k=v]`).

DVC stages run `python -m flows.<stage>`; the same command works by hand. Errors a user can fix
(bad params, missing inputs) print one line and exit 2, as the `toolrl` command does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from toolrl.config import ConfigError

# Set by the pipeline flow for the stage processes it starts through DVC, so that their flow runs
# carry the pipeline run's tag in the Prefect UI (plumbing, like TOOLRL_PARENT_RUN_ID for MLflow).
PIPELINE_TAG_ENV = "TOOLRL_PIPELINE_TAG"


def parse_args(stage: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage}", description=f"Run the {stage} stage flow.")
    parser.add_argument("--params", "-p", default="params.yaml", help="params file (default params.yaml)")
    parser.add_argument("--set", "-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param as `dvc exp run -S` does (repeatable)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="grpo, grpo_trm: train the stage with grpo.seed S into the seeds' folder "
                             "(params `seeds`; dvc.yaml's <stage>_seed stages)")
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="grpo: train the stage with the reward variant NAME into the grid's folder "
                             "(params `grid`; dvc.yaml's grpo_variant stages)")
    return parser.parse_args(argv)


def copy_overrides(stage: str, args: argparse.Namespace) -> list[str]:
    """The overrides that make this run one of the stage's copies: a training seed (`--seed`, params `seeds`)
    or a reward variant (`--variant`, params `grid`), after the user's own; none for the stage itself."""
    if args.seed is None and args.variant is None:
        return []
    if args.seed is not None and args.variant is not None:
        raise ConfigError("--seed and --variant each name a copy of the stage with its own folder: give one of them")
    from toolrl.config import GRID_STAGE, SEEDED_STAGES, load_params

    params = load_params(args.params, args.overrides)
    if args.seed is not None:
        if stage not in SEEDED_STAGES:
            raise ConfigError(f"--seed is for the {' and '.join(SEEDED_STAGES)} stages (params `seeds`), "
                              f"not {stage}: set {stage}'s own seed with -S instead")
        extra = params.seeds.overrides(stage, args.seed)
    else:
        if stage != GRID_STAGE:
            raise ConfigError(f"--variant is for the {GRID_STAGE} stage (params `grid`), not {stage}: set "
                              "grpo.reward.variant with -S instead")
        extra = params.grid.overrides(args.variant)
    load_params(args.params, [*args.overrides, *extra])  # an unknown variant fails here, before Prefect starts
    return extra


# Prefect's temporary server (used when no PREFECT_API_URL is set) gets 20 s to start by default;
# on a busy 2-core machine with several stage processes starting it can take longer.
EPHEMERAL_STARTUP_TIMEOUT_S = 120


@contextmanager
def prefect_settings() -> Iterator[None]:
    """A patient temporary server (a default only: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    in the environment still wins)."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    with temporary_settings(set_defaults={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_TIMEOUT_S}):
        yield


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """SIGTERM raises SystemExit(143), so `finally` blocks and atexit hooks run before the process ends.

    Prefect turns a SIGTERM during a flow run into a crashed state, then hands the signal back to the
    handler it found. With Python's default handler there the process dies on the spot, atexit never
    runs and Prefect's temporary server (stopped by an atexit hook) outlives the flow. Only installed
    over the default handler, from the main thread.
    """
    try:
        installed = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    except ValueError:  # not the main thread
        installed = False
    if installed:
        signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def stage_tags() -> list[str]:
    tag = os.environ.get(PIPELINE_TAG_ENV)
    return ["toolrl", *([tag] if tag else [])]


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message tells the user what to fix: printed as one line (exit 2), no traceback.

    A domain module's error class is only looked up if that module was loaded (it raised, so it
    was), which keeps e.g. the training stack out of stages that never import it.
    """
    from toolrl.cli import UserError
    from toolrl.models import ModelError

    errors: list[type[BaseException]] = [ConfigError, ModelError, UserError, FileNotFoundError]
    for module, name in (("toolrl.training.data", "TrainingError"),):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def run_stage(stage: str, flow_fn: Callable[..., Any], argv: list[str] | None = None) -> int:
    """Entry point of `python -m flows.<stage>`: run `flow_fn(params_path=, overrides=)`."""
    import prefect

    args = parse_args(stage, argv)
    try:
        overrides = [*args.overrides, *copy_overrides(stage, args)]
        with exit_on_sigterm(), prefect_settings(), prefect.tags(*stage_tags()):
            flow_fn(params_path=args.params, overrides=overrides)
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
