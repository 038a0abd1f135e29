"""The `toolrl` command. Sub-commands live next to the code they drive and register here.

Errors a user can fix (bad params, missing files, a wrong model id) print one readable line and exit
with code 2; no traceback. Heavy libraries (torch, transformers) are imported inside commands so that
`toolrl --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from toolrl.config import ConfigError, Params, load_params

console = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to read")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="override a param, as `dvc exp run -S` does: key.sub=value"),
]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def load(params: Path, overrides: list[str] | None) -> Params:
    return load_params(params, overrides or [])


app = typer.Typer(
    name="toolrl",
    help="Train language models to call tools with RL: ToolRL rewards, a tool-call reward model, "
    "official benchmark evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

params_app = typer.Typer(help="Show and check params.yaml.", no_args_is_help=True)
model_app = typer.Typer(help="Base models: resolve and prepare.", no_args_is_help=True)
app.add_typer(params_app, name="params")
app.add_typer(model_app, name="model")


@params_app.command("show")
def params_show(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Print the validated params (defaults filled in) as YAML."""
    p = load(params, set_)
    typer.echo(yaml.safe_dump(p.model_dump(mode="json"), sort_keys=False))


@params_app.command("check")
def params_check(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Validate params.yaml (and overrides); exit 2 with the offending key if invalid."""
    load(params, set_)
    console.print(f"[green]{params} is valid[/green]")


@params_app.command("profile")
def params_profile(
    name: Annotated[str, typer.Argument(help="a profile in configs/ (smoke, full, ...) or `default`")],
    params: ParamsOpt = Path("params.yaml"),
    as_args: Annotated[bool, typer.Option("--args", help="one line of `-S key=value` arguments")] = False,
) -> None:
    """Print a profile as `dvc exp run -S` overrides (checked against the schema), one per line.

    `toolrl params profile smoke --args | xargs dvc exp run` runs the DAG on the profile as a DVC experiment.
    """
    import shlex

    from toolrl.profiles import dvc_set_args, profile_overrides

    args = dvc_set_args(profile_overrides(name, params_file=params), params)
    if as_args:
        typer.echo(" ".join(f"-S {shlex.quote(a)}" for a in args))
    else:
        typer.echo("\n".join(args))


@model_app.command("prepare")
def model_prepare(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Resolve the `model` section and save the base model as a safetensors folder."""
    from toolrl.models import prepare_base_model

    p = load(params, set_)
    out = prepare_base_model(p.model)
    console.print(f"base model ready in [bold]{out}[/bold]")


def _register_subcommands() -> None:
    """Sub-apps defined beside their domain code (each module exposes `app`; a module whose app has a
    single callback and no commands, like `eval`, is registered as one plain command)."""
    import importlib

    for module, name in SUBCOMMANDS:
        sub = importlib.import_module(module).app
        callback = sub.registered_callback
        if not sub.registered_commands and not sub.registered_groups and callback is not None:
            app.command(name, help=sub.info.help)(callback.callback)
        else:
            app.add_typer(sub, name=name)


# (module, sub-command name); each module must import heavy libraries lazily.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("toolrl.evaluation.cli", "eval"),
    ("toolrl.rewards.cli", "reward"),
    ("toolrl.data.cli", "data"),
    ("toolrl.training.cli", "train"),
    ("toolrl.trm.cli", "trm"),
]


def main() -> None:
    from toolrl.models import ModelError

    _register_subcommands()
    try:
        app()
    except (ConfigError, UserError, ModelError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    # `python -m toolrl.cli` runs this file as __main__, whose UserError is not the class the sub-commands
    # import and raise: run the imported module's main, so their errors exit 2 in one line here too
    from toolrl.cli import main as imported_main

    imported_main()
