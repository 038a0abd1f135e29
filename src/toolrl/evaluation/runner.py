"""Score every model of `evaluate.models` on every benchmark category, reusing cached completions.

For each model: resolve the reference to a folder and a content hash, look up every case's completion
in the cache, generate only the missing ones (the model is loaded only if something is missing, and
once for both kinds of case), then grade all cases. A BFCL multi-turn case's "completion" is its whole
conversation, run by the conversation loop (`conversations.py`). The result holds every grade;
`report.py` turns it into tables and plots.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from toolrl.config import EvaluateParams, Params
from toolrl.evaluation import api_bank, bfcl, conversations
from toolrl.evaluation.cache import CompletionCache, prompt_key
from toolrl.evaluation.generation import Generator, make_generator, resolve_backend, settings
from toolrl.evaluation.records import BenchmarkCase, Grade
from toolrl.evaluation.references import ResolvedModel, Skipped, resolve

GRADERS: dict[str, Callable[[BenchmarkCase, str], Grade]] = {
    "bfcl": bfcl.grade, "api_bank": api_bank.grade, conversations.BENCHMARK: conversations.grade}
Column = tuple[str, str]  # (benchmark, category)
MULTI_TURN = conversations.BENCHMARK
# The model's policy for multi-turn cases: (folder, evaluate params, the generator already loaded or None).
PolicyFactory = Callable[[Path, EvaluateParams, Generator | None], Any]

console = Console(stderr=True)


@dataclass
class Graded:
    example: BenchmarkCase
    grade: Grade
    completion: str  # a multi-turn case: a compact reading of the conversation (`conversations.view`)
    trajectory: dict[str, Any] | None = None  # a multi-turn case: what the conversation did


@dataclass
class ModelResult:
    model: ResolvedModel
    graded: dict[Column, list[Graded]] = field(default_factory=dict)
    generated: int = 0  # completions generated in this run (the rest came from the cache)
    generation_seconds: float = 0.0
    backend: str = ""  # the backend of its single-turn completions (`evaluate.backend`, `auto` resolved)

    @property
    def label(self) -> str:
        return self.model.label

    def grades(self, benchmark: str) -> list[Grade]:
        return [g.grade for (bench, _), rows in self.graded.items() if bench == benchmark for g in rows]

    def accuracy(self, column: Column) -> float | None:
        rows = self.graded.get(column) or []
        return sum(g.grade.correct for g in rows) / len(rows) if rows else None


@dataclass
class EvalResults:
    columns: list[Column]
    sizes: dict[Column, int]
    models: list[ModelResult]
    warnings: list[str]
    notes: list[str] = field(default_factory=list)  # facts about the sample, shown under the report's header

    @property
    def generated(self) -> int:
        return sum(m.generated for m in self.models)


# ---------------------------------------------------------------- benchmarks


def limit_of(ev: EvaluateParams, benchmark: str) -> int | None:
    """Cases per category of a benchmark: its own limit if it has one, else `evaluate.limit`."""
    return ev.limit_per_benchmark.get(benchmark, ev.limit)  # a key set to None means "all cases"


def load_benchmarks(params: Params) -> tuple[dict[Column, list[BenchmarkCase]], list[str]]:
    """Every (benchmark, category) to score with its examples, and warnings for what is left out."""
    ev = params.evaluate
    cases: dict[Column, list[BenchmarkCase]] = {}
    warnings: list[str] = []
    if "bfcl" in ev.benchmarks:
        trained_on = {c for s in params.data.sources if s.name == "bfcl" for c in s.categories}
        for category in ev.bfcl_categories:
            if conversations.is_multi_turn(category):  # held-out scenarios only: never trained on
                cases[(MULTI_TURN, category)] = conversations.load_category(
                    category, params.multi_turn, limit_of(ev, MULTI_TURN), ev.seed)
                continue
            if category in trained_on:
                warnings.append(f"bfcl {category} is also a training source (data.sources): its score is not "
                                "held out")
            cases[("bfcl", category)] = bfcl.load_category(category, limit_of(ev, "bfcl"), ev.seed)
    if "api_bank" in ev.benchmarks:
        if not ev.api_bank_paths:
            warnings.append("api_bank: no data files configured (evaluate.api_bank_paths); skipped")
        for path in ev.api_bank_paths:
            level = api_bank.load_level(path, limit_of(ev, "api_bank"), ev.seed)
            warnings.extend(f"api_bank {p}" for p in level.problems)
            if ("api_bank", level.name) in cases:
                raise ValueError(f"two API-Bank files map to level {level.name!r}: name each level's file "
                                 "`level-<n>-...json`")
            cases[("api_bank", level.name)] = level.examples
    return cases, warnings


# ---------------------------------------------------------------- one model


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


class _Loaded:
    """The model of one reference, loaded at most once: as a generator, a multi-turn policy, or both."""

    def __init__(self, folder: Path, ev: EvaluateParams, generator_factory: Callable[[Path, EvaluateParams], Generator],
                 policy_factory: PolicyFactory):
        self.folder, self.ev = folder, ev
        self._generator_factory, self._policy_factory = generator_factory, policy_factory
        self._generator: Generator | None = None
        self._policy: Any = None

    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self._generator_factory(self.folder, self.ev)
        return self._generator

    def policy(self) -> Any:
        if self._policy is None:
            self._policy = self._policy_factory(self.folder, self.ev, self._generator)
        return self._policy

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
        self._policy = None


def _missing(cases: dict[Column, list[BenchmarkCase]], cached: dict[Column, dict[str, str]]) -> dict[Column, list]:
    out = {}
    for col, examples in cases.items():
        if col[0] == MULTI_TURN:  # a trajectory that cannot be read back is run again
            cached[col] = {k: v for k, v in cached[col].items() if conversations.read(v) is not None}
        out[col] = [ex for ex in examples if prompt_key(ex) not in cached[col]]
    return out


def evaluate_model(model: ResolvedModel, cases: dict[Column, list[BenchmarkCase]], ev: EvaluateParams,
                   generator_factory: Callable[[Path, EvaluateParams], Generator] = make_generator,
                   show_progress: bool = True,
                   policy_factory: PolicyFactory = conversations.make_policy) -> ModelResult:
    # `auto` resolved once per model, so its cache key, its generator and the report agree
    ev = ev.model_copy(update={"backend": resolve_backend(ev.backend, model.folder)})
    caches = {False: CompletionCache(ev.cache_dir, model.content_hash, settings(ev)),
              True: CompletionCache(ev.cache_dir, model.content_hash, conversations.settings(ev))}
    result = ModelResult(model=model, backend=ev.backend)
    cached = {col: caches[col[0] == MULTI_TURN].load(*col) for col in cases}
    missing = _missing(cases, cached)
    todo = sum(len(v) for v in missing.values())
    if todo:
        console.print(f"[bold]{model.label}[/bold]: generating {todo} completions "
                      f"({sum(len(v) for v in cases.values()) - todo} cached)")
        loaded = _Loaded(model.folder, ev, generator_factory, policy_factory)
        started = time.perf_counter()
        try:
            with _progress() as progress:
                task = progress.add_task(model.label, total=todo, visible=show_progress)

                def store(col: Column, done: list[tuple[BenchmarkCase, str]]) -> None:
                    caches[col[0] == MULTI_TURN].add(*col, [ex for ex, _ in done], [text for _, text in done])
                    cached[col].update({prompt_key(ex): text for ex, text in done})
                    progress.advance(task, len(done))

                single = {col: exs for col, exs in missing.items() if col[0] != MULTI_TURN and exs}
                if single:
                    _generate(loaded.generator(), single, store)
                talks = [ex for col, exs in missing.items() if col[0] == MULTI_TURN for ex in exs]
                if talks:  # every category in one pass, as above: full batches of conversations

                    def on_talks(batch: list[BenchmarkCase], texts: list[str]) -> None:
                        by_column: dict[Column, list[tuple[BenchmarkCase, str]]] = defaultdict(list)
                        for ex, text in zip(batch, texts, strict=True):
                            by_column[(MULTI_TURN, ex.category)].append((ex, text))
                        for col, done in by_column.items():
                            store(col, done)

                    conversations.run(talks, loaded.policy(), ev, on_talks)
        finally:
            loaded.close()
        result.generated = todo
        result.generation_seconds = time.perf_counter() - started
    else:
        console.print(f"[bold]{model.label}[/bold]: all {sum(len(v) for v in cases.values())} completions cached")
    for col, examples in cases.items():
        result.graded[col] = [_graded(col, ex, cached[col][prompt_key(ex)]) for ex in examples]
    return result


def _graded(col: Column, example: BenchmarkCase, completion: str) -> Graded:
    grade = GRADERS[col[0]](example, completion)
    if col[0] != MULTI_TURN:
        return Graded(example, grade, completion)
    trajectory = conversations.read(completion)
    return Graded(example, grade, conversations.view(trajectory), trajectory=trajectory.to_dict())


def _generate(generator: Generator, missing: dict[Column, list[BenchmarkCase]],
              store: Callable[[Column, list[tuple[BenchmarkCase, str]]], None]) -> None:
    """Single-turn completions of every missing case, each batch cached as soon as it is done."""
    # One pass over every category: full batches throughout (a category of 20 at batch 8 ends in a
    # batch of 4, as slow as a full one) and the generator's length sort spans all prompts: 15 batches
    # instead of 18 for 6 categories of 20 (docs/BENCHMARKS.md).
    pending = [(col, ex) for col, examples in missing.items() for ex in examples]
    reported: set[int] = set()

    def on_done(indices: list[int], texts: list[str]) -> None:
        reported.update(indices)
        by_column: dict[Column, list[tuple[BenchmarkCase, str]]] = defaultdict(list)
        for i, text in zip(indices, texts, strict=True):
            by_column[pending[i][0]].append((pending[i][1], text))
        for col, done in by_column.items():
            store(col, done)

    texts = generator.generate([ex.messages for _, ex in pending], on_done)
    rest = [i for i in range(len(pending)) if i not in reported]  # a generator that reports nothing
    if rest:
        on_done(rest, [texts[i] for i in rest])


# ---------------------------------------------------------------- all models


def evaluate(params: Params,
             generator_factory: Callable[[Path, EvaluateParams], Generator] = make_generator,
             show_progress: bool = True,
             policy_factory: PolicyFactory = conversations.make_policy) -> EvalResults:
    ev = params.evaluate
    cases, warnings = load_benchmarks(params)
    notes = []
    if any(b == MULTI_TURN for b, _ in cases):
        notes.append(f"{MULTI_TURN}: drawn from the {conversations.held_out_scenarios(params.multi_turn)} of BFCL's "
                     f"200 multi-turn scenarios held out for evaluation (multi_turn.seed {params.multi_turn.seed}, "
                     f"eval_share {params.multi_turn.eval_share}); training sees only the others. Each conversation "
                     f"runs greedily on the hf weights with {_limits(ev)}.")
    models: list[ModelResult] = []
    for ref in ev.models:
        resolved = resolve(ref, params)
        if isinstance(resolved, Skipped):
            warnings.append(f"model {resolved.label}: {resolved.reason}")
            continue
        models.append(evaluate_model(resolved, cases, ev, generator_factory, show_progress, policy_factory))
    warnings.extend(bfcl.checker_warnings({m.label: m.grades("bfcl") + m.grades(MULTI_TURN) for m in models}))
    return EvalResults(columns=list(cases), sizes={c: len(v) for c, v in cases.items()}, models=models,
                       warnings=warnings, notes=notes)


def _limits(ev: EvaluateParams) -> str:
    return ", ".join(f"{k} {v}" for k, v in ev.multi_turn.model_dump().items())
