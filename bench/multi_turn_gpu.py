"""Multi-turn GRPO on a CUDA GPU: a step's time and where it goes, stock TRL against the shared prefix.

The rollouts are the project's conversation loop (`multiturn.loop.converse`) against BFCL's
executable environments, inside TRL's `GRPOTrainer` through `rollout_func`
(`multiturn.rollouts.bfcl_rollout_func`). Like bench/grpo_gpu.py it runs where no project install
exists: torch, TRL, transformers, datasets, pydantic, bfcl-eval and this repository's `src/` on the
path, and a model folder made here:

    .venv/bin/python bench/grpo_gpu.py --prepare .gpu          # here: tiny-random + SmolLM2-135M's shape
    python3 bench/multi_turn_gpu.py --models .gpu              # there: the timing table

SmolLM2-135M's shape with random weights (the embedded weights do not fit the transfer): such a
model never writes a parseable call, so every user turn is one 64-token message and the next
request. The openings are BFCL's (~3.5k tokens with the tools of two classes), so the cost measured
is the multi-turn structure's: a long shared opening, several rounds, a growing context.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]


def cases(n: int) -> list:
    from toolrl.multiturn.cases import load_cases

    chosen = [c for c in load_cases("multi_turn_base") if len(c.involved_classes) == 2]
    return chosen[:n]


def step_time(model_dir: Path, trainer_name: str, prompts: int, group: int, steps: int, max_new_tokens: int) -> dict:
    import torch
    from datasets import Dataset
    from grpo_gpu import step_clock, sync
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from toolrl.multiturn.loop import Limits
    from toolrl.multiturn.rollouts import bfcl_rollout_func, dataset_rows
    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not (model_dir / "model.safetensors").exists():  # the shape only: random weights, seeded, saved once
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).save_pretrained(model_dir)
    chosen = cases(prompts)
    make_rollouts = bfcl_rollout_func(chosen, Limits(max_new_tokens=max_new_tokens, max_steps_per_turn=2,
                                                     max_calls=8, max_total_tokens=8192))
    steps_s, rollout_s, tokens, env_tokens = [], [], [], []
    cuda = torch.cuda.is_available()

    def rollout_func(prompts_, trainer):
        sync()
        t0 = time.perf_counter()
        out = make_rollouts(prompts_, trainer)
        sync()
        rollout_s.append(time.perf_counter() - t0)
        tokens.append(statistics.mean(len(p) + len(c) for p, c in zip(out["prompt_ids"], out["completion_ids"],
                                                                        strict=True)))
        env_tokens.append(statistics.mean(len(m) - sum(m) for m in out["env_mask"]))
        return out

    Clock = step_clock(steps_s)  # noqa: N806 - a callback class

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=prompts * group,
                      num_generations=group, max_steps=steps, beta=0.001, bf16=True, report_to=[],
                      save_strategy="no", logging_steps=1, learning_rate=1e-6, model_init_kwargs={"dtype": "float32"},
                      use_cpu=not cuda, activation_checkpointing=False)
    common = {"model": str(model_dir), "args": args, "processing_class": tokenizer, "callbacks": [Clock()],
              "reward_funcs": lambda completions, trajectory, **kw: [float(len(t["turns"])) for t in trajectory],
              "train_dataset": Dataset.from_list(dataset_rows(chosen)), "rollout_func": rollout_func}
    trainer = (GRPOTrainer(**common) if trainer_name == "trl"
               else SharedPrefixGRPOTrainer(**common, shared_prefix=True, generation_dtype="bfloat16"))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return {"trainer": trainer_name, "layout": f"{prompts} x {group}", "sec_per_step": statistics.mean(steps_s[1:]),
            "rollout_s": statistics.mean(rollout_s[1:]), "tokens_per_rollout": statistics.mean(tokens),
            "env_tokens_per_rollout": statistics.mean(env_tokens),
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(".gpu"))
    parser.add_argument("--steps", type=int, default=3, help="steps per row (the first left out)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="per model message")
    parser.add_argument("--model", default="smol-shape", help="folder under --models (tiny: a CPU smoke run)")
    parser.add_argument("--layouts", default="2x4,1x8")
    args = parser.parse_args()
    import torch

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"torch {torch.__version__}, {where}", flush=True)
    layouts = [tuple(int(x) for x in layout.split("x")) for layout in args.layouts.split(",")]
    rows = []
    for prompts, group in layouts:
        for trainer in ("trl", "shared", "trl", "shared"):  # alternating, twice
            rows.append(step_time(args.models / args.model, trainer, prompts, group, args.steps,
                                  args.max_new_tokens))
            print(rows[-1], flush=True)
    print("\n| prompts x group | trainer | s / step | rollouts s / step | tokens / rollout (env) | peak GPU GB | "
          "speed-up |")
    print("|---|---|---|---|---|---|---|")
    for layout in (f"{p} x {g}" for p, g in layouts):
        mine = {t: [r for r in rows if (r["layout"], r["trainer"]) == (layout, t)] for t in ("trl", "shared")}
        sec = {t: statistics.mean(r["sec_per_step"] for r in rs) for t, rs in mine.items()}
        for t, rs in mine.items():
            print(f"| {layout} | {t} | {sec[t]:.2f} | {statistics.mean(r['rollout_s'] for r in rs):.2f} | "
                  f"{statistics.mean(r['tokens_per_rollout'] for r in rs):.0f} "
                  f"({statistics.mean(r['env_tokens_per_rollout'] for r in rs):.0f}) | "
                  f"{max(r['peak_gb'] for r in rs):.2f} | {sec['trl'] / sec[t]:.2f}x |")


if __name__ == "__main__":
    main()
