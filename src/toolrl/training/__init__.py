"""Training stages on TRL: the SFT baseline and GRPO with the ToolRL reward design.

- `data`: curated jsonl -> the SFT view (prompt + completion) and the RL view (prompt + ground_truth).
- `checkpoints`: the output folder's state: resume from the last checkpoint, or start over.
- `callbacks`: per-step metrics to MLflow and a CSV for DVC plots, sample completions, call statistics.
- `probe`: greedy completions on held-out prompts, scored for well-formed tool calls.
- `publish`: the final model, its metrics file and plot, logged and registered in MLflow.
- `sft`, `grpo`: one function per stage, `run_sft(params)` / `run_grpo(params)`.
- `launch`: the command that starts a stage (in-process, or `accelerate launch` on GPUs).
- `cli`: `toolrl train sft|grpo`.
"""
