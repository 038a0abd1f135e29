"""One rollout's world: fresh instances of a BFCL case's executable classes.

BFCL's own executor (`multi_turn_utils.execute_multi_turn_func_call`) keeps instances in module
globals keyed by model name and case id and runs each call through `eval`, so two rollouts of the
same case share state. Here each `BfclEnvironment` owns its instances, built from a deep copy of the
case's initial state, and calls methods by name with keyword arguments: nothing leaks between
rollouts, and nothing the model writes is evaluated as Python.

Every call gets a tool message back, never an exception: an unknown or not yet available function,
arguments that do not fit its signature, or an error raised inside the tool each become a message
saying what was wrong, so the model can read it and the rollout goes on.
"""

from __future__ import annotations

import contextlib
import copy
import decimal
import importlib
import inspect
import json
from typing import Any

from toolrl.formats import ToolCall
from toolrl.multiturn.cases import MultiTurnCase

# Arguments whose large values make a BFCL tool compute for minutes in-process (MathAPI's square_root and
# logarithm at `precision` 10^8, power at a huge integer exponent), blocking a whole batched rollout. BFCL's
# cases use precisions of a few digits and exponents in the tens.
ARGUMENT_BOUNDS = {"precision": 1_000, "exponent": 10_000}


def own_state(instance: Any) -> None:
    """Give a loaded instance its own copy of every attribute. TravelAPI's long-context scenarios insert
    the same card and booking dicts that bfcl_eval keeps at module level (`long_context.CREDIT_CARD_EXTENSION`),
    so a booking would otherwise change them for every later instance in the process."""
    # One deepcopy of all attributes together: attributes point into each other (GorillaFileSystem's
    # current directory lies inside its tree) and must still do so; the instance itself stays itself.
    vars(instance).update(copy.deepcopy(dict(vars(instance)), {id(instance): instance}))


@contextlib.contextmanager
def own_states(classes: list[str]):
    """While inside, every instance of these classes loads its scenario into its own state (`own_state`):
    for BFCL's checker, which builds the model's and the ground truth's instances itself."""
    patched = []
    for name in classes:
        cls = _class_of(name)
        original = cls.__dict__.get("_load_scenario")
        if original is None:
            continue

        def load(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            own_state(self)

        cls._load_scenario = load
        patched.append((cls, original))
    try:
        yield
    finally:
        for cls, original in patched:
            cls._load_scenario = original


def _class_of(name: str) -> type:
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    if name not in CLASS_FILE_PATH_MAPPING:
        raise ValueError(f"unknown BFCL environment class {name!r}: bfcl_eval knows "
                         f"{', '.join(sorted(CLASS_FILE_PATH_MAPPING))}")
    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[name]), name)


def result_text(value: Any) -> str:
    """A tool's return value as the model reads it: BFCL's own rendering (a dict as JSON, else str)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def call_string(call: ToolCall) -> str:
    """A call in BFCL's decoded form, `name(arg=value, ...)`, the form its multi-turn checker executes.

    Values come from JSON (str, number, bool, None, list, dict), whose Python repr is a literal.
    """
    args = ",".join(f"{key}={value!r}" for key, value in call.arguments.items())
    return f"{call.name}({args})"


class BfclEnvironment:
    """Executes one rollout's calls against its own copy of a case's initial state.

    `open_turn(i)` makes the functions that arrive at turn i available (BFCL's miss_func category
    holds some back); `execute` runs one call and always returns a message.
    """

    def __init__(self, case: MultiTurnCase):
        self.case = case
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        self.available: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Fresh instances from a deep copy of the case's initial state; only the first turn's functions."""
        from bfcl_eval.constants.executable_backend_config import STATELESS_CLASSES

        self.instances, self.methods = {}, {}
        for name in self.case.involved_classes:
            instance = _class_of(name)()
            if name not in STATELESS_CLASSES:
                config = copy.deepcopy(self.case.initial_config.get(name, {}))
                instance._load_scenario(config, long_context=self.case.long_context)
                own_state(instance)
            self.instances[name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self.methods[method_name] = method
        self.available = {f["name"] for f in self.case.functions}

    def open_turn(self, turn: int) -> list[dict[str, Any]]:
        """Make turn `turn`'s added functions callable; returns their docs (empty for most turns)."""
        added = self.case.added_functions.get(turn, [])
        self.available |= {f["name"] for f in added}
        return added

    def refusal(self, call: ToolCall) -> str | None:
        """Why this call is not run here, as the message the model gets, or None when it runs: a function
        not offered (yet), arguments that do not fit its signature, an argument over `ARGUMENT_BOUNDS`."""
        if call.name not in self.available or call.name not in self.methods:
            shown = ", ".join(sorted(self.available))
            return f"Error: there is no function named {call.name!r} here. Available functions: {shown}."
        method = self.methods[call.name]
        try:
            inspect.signature(method).bind(**call.arguments)
        except TypeError as exc:
            params = ", ".join(inspect.signature(method).parameters)
            return f"Error: wrong arguments for {call.name}: {exc}. Its parameters are: {params}."
        for name, bound in ARGUMENT_BOUNDS.items():
            value = call.arguments.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > bound:
                return f"Error: {name}={value!r} is too large for {call.name} here (at most {bound})."
        return None

    def execute(self, call: ToolCall) -> str:
        """Run one call; a bad call becomes a message that says what was wrong."""
        refusal = self.refusal(call)
        return refusal if refusal is not None else self.run(call)

    def run(self, call: ToolCall) -> str:
        """Run a call `refusal` let through; the tool's own failure becomes a message."""
        method = self.methods[call.name]
        try:
            # A copy: tools keep argument lists in their state (post_tweet's mentions) and later calls
            # mutate them, which would otherwise rewrite the call as the trajectory recorded it. A local
            # decimal context: MathAPI sets the process-wide precision.
            with decimal.localcontext():
                return result_text(method(**copy.deepcopy(call.arguments)))
        except Exception as exc:  # noqa: BLE001 - a tool's own failure is the model's feedback
            return f"Error during execution of {call.name}: {type(exc).__name__}: {exc}"

    def state(self) -> dict[str, dict[str, Any]]:
        """Each stateful instance's public attributes (for logs and tests), deep-copied."""
        return {name: copy.deepcopy({k: v for k, v in vars(inst).items() if not k.startswith("_")})
                for name, inst in self.instances.items()}
