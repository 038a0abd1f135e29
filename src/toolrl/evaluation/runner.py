"""Score every model of `evaluate.models` on every benchmark category, reusing cached completions.

For each model: resolve the reference to a folder and a content hash, look up every case's completion
in the cache, generate only the missing ones (the model is loaded only if something is missing), then
grade all cases. The result holds every grade; `report.py` turns it into tables and plots.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from toolrl.config import EvaluateParams, Params
from toolrl.evaluation import api_bank, bfcl
from toolrl.evaluation.cache import CompletionCache, prompt_key
from toolrl.evaluation.generation import Generator, make_generator, settings
from toolrl.evaluation.records import BenchmarkCase, Grade
from toolrl.evaluation.references import ResolvedModel, Skipped, resolve

GRADERS: dict[str, Callable[[BenchmarkCase, str], Grade]] = {"bfcl": bfcl.grade, "api_bank": api_bank.grade}
Column = tuple[str, str]  # (benchmark, category)

console = Console(stderr=True)


@dataclass
class Graded:
    example: BenchmarkCase
    grade: Grade
    completion: str


@dataclass
class ModelResult:
    model: ResolvedModel
    graded: dict[Column, list[Graded]] = field(default_factory=dict)
    generated: int = 0  # completions generated in this run (the rest came from the cache)
    generation_seconds: float = 0.0

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


def evaluate_model(model: ResolvedModel, cases: dict[Column, list[BenchmarkCase]], ev: EvaluateParams,
                   generator_factory: Callable[[Path, EvaluateParams], Generator] = make_generator,
                   show_progress: bool = True) -> ModelResult:
    cache = CompletionCache(ev.cache_dir, model.content_hash, settings(ev))
    result = ModelResult(model=model)
    cached = {col: cache.load(*col) for col in cases}
    missing = {col: [ex for ex in exs if prompt_key(ex) not in cached[col]] for col, exs in cases.items()}
    todo = sum(len(v) for v in missing.values())
    if todo:
        console.print(f"[bold]{model.label}[/bold]: generating {todo} completions "
                      f"({sum(len(v) for v in cases.values()) - todo} cached)")
        generator = generator_factory(model.folder, ev)
        started = time.perf_counter()
        try:
            with _progress() as progress:
                task = progress.add_task(model.label, total=todo, visible=show_progress)
                # One pass over every category: full batches throughout (a category of 20 at batch 8
                # ends in a batch of 4, as slow as a full one) and the generator's length sort spans
                # all prompts: 15 batches instead of 18 for 6 categories of 20 (docs/BENCHMARKS.md).
                pending = [(col, ex) for col, examples in missing.items() for ex in examples]
                reported: set[int] = set()

                def on_done(indices: list[int], texts: list[str]) -> None:
                    reported.update(indices)
                    by_column: dict[Column, list[tuple[BenchmarkCase, str]]] = defaultdict(list)
                    for i, text in zip(indices, texts, strict=True):
                        by_column[pending[i][0]].append((pending[i][1], text))
                    for col, done in by_column.items():
                        cache.add(*col, [ex for ex, _ in done], [text for _, text in done])
                        cached[col].update({prompt_key(ex): text for ex, text in done})
                    progress.advance(task, len(indices))

                texts = generator.generate([ex.messages for _, ex in pending], on_done)
                rest = [i for i in range(len(pending)) if i not in reported]  # a generator that reports nothing
                if rest:
                    on_done(rest, [texts[i] for i in rest])
        finally:
            generator.close()
        result.generated = todo
        result.generation_seconds = time.perf_counter() - started
    else:
        console.print(f"[bold]{model.label}[/bold]: all {sum(len(v) for v in cases.values())} completions cached")
    for col, examples in cases.items():
        grade = GRADERS[col[0]]
        result.graded[col] = [Graded(ex, grade(ex, cached[col][prompt_key(ex)]), cached[col][prompt_key(ex)])
                              for ex in examples]
    return result


# ---------------------------------------------------------------- all models


def evaluate(params: Params,
             generator_factory: Callable[[Path, EvaluateParams], Generator] = make_generator,
             show_progress: bool = True) -> EvalResults:
    ev = params.evaluate
    cases, warnings = load_benchmarks(params)
    models: list[ModelResult] = []
    for ref in ev.models:
        resolved = resolve(ref, params)
        if isinstance(resolved, Skipped):
            warnings.append(f"model {resolved.label}: {resolved.reason}")
            continue
        models.append(evaluate_model(resolved, cases, ev, generator_factory, show_progress))
    warnings.extend(bfcl.checker_warnings({m.label: m.grades("bfcl") for m in models}))
    return EvalResults(columns=list(cases), sizes={c: len(v) for c, v in cases.items()}, models=models,
                       warnings=warnings)
