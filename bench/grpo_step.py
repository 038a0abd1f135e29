"""GRPO step cost on the embedded model: stock TRL against shared-prefix GRPO, side by side.

For each layout (prompts x group size per step, all in one micro-batch), completion length and
trainer, a child process builds the stage's trainer exactly as `toolrl train grpo` does
(`toolrl.training.grpo.config_kwargs`, the reward library's functions), runs a few steps and
reports; the first step is warm-up and left out of the means. A child per configuration gives each
its own peak RSS. The trainers alternate within each layout, so their ratio is measured under the
same machine conditions (this VM's speed drifts by 2x within an hour).

- `trl`: TRL 1.16's own GRPOTrainer (generation with the fp32 policy, every completion over its prompt);
- `shared`: `SharedPrefixGRPOTrainer` as the stage runs it (`grpo.shared_prefix`, `grpo.generation_dtype`);
- `lookup`: the same with `grpo.lookup_tokens` drafts checked in each decode pass (`--lookup-tokens`).

    .venv/bin/python bench/grpo_step.py                        # 2x4 and 1x8, 96 tokens, both trainers
    .venv/bin/python bench/grpo_step.py --layouts 2x4 --lengths 64 --steps 4 --data data/curated

Needs models/base (`toolrl model prepare`). Prompts come from `--data`/train.jsonl when given, else
a few built-in records in the ToolRL format. Prints a markdown table (append it to docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from toolrl import formats

TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "convert_currency", "description": "Convert an amount between currencies.",
     "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "source": {"type": "string"},
                                                    "target": {"type": "string"}},
                    "required": ["amount", "source", "target"]}},
]


def builtin_records(n: int = 16) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        city = ["Paris", "Lima", "Oslo", "Cairo"][i % 4]
        conversation = [{"role": "user", "content": f"What's the weather in {city}?"}]
        calls = [formats.ToolCall("get_weather", {"city": city})]
        out.append({"id": f"bench-{i}", "tools": TOOLS, "prompt": formats.prompt_messages(TOOLS, conversation),
                    "completion": [{"role": "assistant", "content": formats.render_completion("weather", calls, None)}],
                    "ground_truth": formats.ground_truth("weather", calls, None)})
    return out


def one(prompts: int, group: int, length: int, trainer_name: str, steps: int, data: str | None, model_dir: str,
        bf16: str, lookup_tokens: int = 0) -> dict[str, Any]:
    """Run `steps` GRPO steps in this process; return the measurements."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from toolrl.config import validate
    from toolrl.hardware import resolve_bf16, resolve_dtype
    from toolrl.rewards.trl import reward_functions
    from toolrl.training.checkpoints import OutputState
    from toolrl.training.data import read_records, to_dataset
    from toolrl.training.grpo import config_kwargs
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer
    from toolrl.training.stage import load_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    params = validate({
        "model": {"output_dir": model_dir},
        "grpo": {"init": "base", "max_steps": steps, "num_generations": group,
                 "per_device_train_batch_size": prompts * group, "gradient_accumulation_steps": 1,
                 "max_completion_length": length, "output_dir": str(tmp / "out"),
                 "bf16": bf16 if bf16 == "auto" else bf16 == "true"},
    })
    records = (read_records(Path(data) / "train.jsonl", "rl", limit=steps * prompts * 2) if data
               else builtin_records())
    dataset = to_dataset(records, "rl")
    tokenizer = load_tokenizer(Path(model_dir))
    kwargs = config_kwargs(params, OutputState(tmp / "out", None, False))
    # TRL times its own phases and logs them to the active MLflow run (`profiling/Time taken: ...`):
    # a throw-away run gives the generation time per step.
    kwargs.update(report_to=["mlflow"], save_strategy="no")
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlruns.db'}")
    logged: list[dict[str, float]] = []
    times: list[float] = []

    class Measure(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                logged.append(dict(logs))

    common = {"model": model_dir, "reward_funcs": reward_functions(params.grpo.reward), "args": GRPOConfig(**kwargs),
              "train_dataset": dataset, "processing_class": tokenizer, "callbacks": [Measure()]}
    if trainer_name == "trl":
        trainer = GRPOTrainer(**common)
    else:
        trainer = SharedPrefixGRPOTrainer(**common, shared_prefix=True,
                                          generation_dtype=resolve_dtype(params.grpo.generation_dtype),
                                          lookup_tokens=lookup_tokens if trainer_name == "lookup" else 0)
    with mlflow.start_run() as run:
        trainer.train()
    gen_times = [m.value for m in mlflow.MlflowClient().get_metric_history(
        run.info.run_id, f"profiling/Time taken: {type(trainer).__name__}.transformers.generate")]
    # One generation per step (no accumulation); the first step (warm-up) is left out.
    measured = list(zip(times, logged, gen_times, strict=False))
    measured = measured[1:] or measured
    tokens = [lg["completions/mean_length"] * group * prompts for _, lg, _ in measured]
    secs = [t for t, _, _ in measured]
    gen = [g for _, _, g in measured]
    prompt_tokens = statistics.mean(
        len(tokenizer(tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True))["input_ids"])
        for r in records[:steps * prompts])
    return {
        "trainer": trainer_name, "prompts": prompts,
        "group": group, "max_completion_length": length, "bf16": resolve_bf16(params.grpo.bf16), "steps_measured": len(secs),
        "sec_per_step": statistics.mean(secs), "completion_tokens_per_step": statistics.mean(tokens),
        "generate_sec_per_step": statistics.mean(gen), "gen_tokens_per_sec": sum(tokens) / sum(gen),
        "step_tokens_per_sec": sum(tokens) / sum(secs), "prompt_tokens": prompt_tokens,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| trainer | prompts x group | bf16 | max completion tokens | s / step | of which generation (s) "
            "| completion tokens / step | generated tokens / s (generation) | completion tokens / s (whole step) "
            "| peak RSS (GB) | speed-up over trl |\n|---|---|---|---|---|---|---|---|---|---|---|")
    base = {(r["prompts"], r["group"], r["max_completion_length"]): r["sec_per_step"] for r in rows if r["trainer"] == "trl"}
    body = []
    for r in rows:
        ref = base.get((r["prompts"], r["group"], r["max_completion_length"]))
        ratio = f"{ref / r['sec_per_step']:.2f}x" if ref else "-"
        body.append(f"| {r['trainer']} | {r['prompts']} x {r['group']} | {'yes' if r['bf16'] else 'no'} | "
                    f"{r['max_completion_length']} | {r['sec_per_step']:.1f} | {r['generate_sec_per_step']:.1f} | "
                    f"{r['completion_tokens_per_step']:.0f} | {r['gen_tokens_per_sec']:.1f} | "
                    f"{r['step_tokens_per_sec']:.1f} | {r['peak_rss_gb']:.2f} | {ratio} |")
    return "\n".join([head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["2x4", "1x8"], help="PROMPTSxGROUP per step")
    parser.add_argument("--lengths", type=int, nargs="+", default=[96])
    parser.add_argument("--trainers", nargs="+", choices=["trl", "shared", "lookup"], default=["trl", "shared"])
    parser.add_argument("--lookup-tokens", type=int, default=6, help="grpo.lookup_tokens of the `lookup` trainer")
    parser.add_argument("--steps", type=int, default=3, help="steps per configuration (the first is warm-up)")
    parser.add_argument("--data", help="curated data folder (train.jsonl); default: built-in prompts")
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--bf16", choices=["auto", "true", "false"], default="auto",
                        help="grpo.bf16 (auto: on where the CPU has AMX / AVX512-BF16)")
    parser.add_argument("--one", nargs=4, metavar=("PROMPTS", "GROUP", "LENGTH", "TRAINER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        p, g, n, name = args.one
        print("RESULT " + json.dumps(one(int(p), int(g), int(n), name, args.steps, args.data, args.model, args.bf16,
                                             args.lookup_tokens)),
              flush=True)
        return
    if not (Path(args.model) / "config.json").exists():
        sys.exit(f"{args.model} holds no model: run `toolrl model prepare` first")
    rows = []
    for layout in args.layouts:
        prompts, group = (int(x) for x in layout.split("x"))
        for length in args.lengths:
            for name in args.trainers:
                cmd = [sys.executable, __file__, "--one", str(prompts), str(group), str(length), name,
                       "--steps", str(args.steps), "--model", args.model, "--bf16", args.bf16,
                       "--lookup-tokens", str(args.lookup_tokens),
                       *(["--data", args.data] if args.data else [])]
                out = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"{layout}, length {length}, {name} failed:\n{out.stderr[-3000:]}")
                rows.append(json.loads(line[len("RESULT "):]))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    prompt = statistics.mean(r["prompt_tokens"] for r in rows)
    print(f"model {args.model}, {args.steps} steps per row (first left out), all completions of a step in one "
          f"micro-batch (~{prompt:.0f} prompt tokens), grpo defaults otherwise (beta 0.001: the reference model "
          "is loaded)\n")
    print(table(rows))


if __name__ == "__main__":
    main()
