"""SFT step cost: TRL's SFTTrainer against the project's (toolrl.training.sft_trainer).

The trainers get the same model, the stage's config (`sft` section of params.yaml, as `toolrl train sft` builds it) and the
same batches in the same order; each runs `--steps` steps, the first left out of the mean, alternating
trainers `--rounds` times so that the machine's drift falls on both. The per-step losses are printed side
by side: the two trainers compute the same loss, up to rounding.

    .venv/bin/python bench/sft_step.py --data data/curated --model models/base --steps 4 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def run(trainer_cls: type, model: str, train, tokenizer, params, steps: int) -> tuple[list[float], list[float]]:
    from transformers import TrainerCallback
    from trl import SFTConfig

    from toolrl.training.checkpoints import OutputState
    from toolrl.training.stage import trainer_args

    sec = params.sft
    times: list[float] = []
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            times.append(time.perf_counter() - self.start)

        def on_log(self, _args, _state, _control, logs=None, **__):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as out:
        # the stage's own TrainingArguments (sft.build_trainer), less its checkpoints and tracking
        stage_args = trainer_args(sec, OutputState(Path(out), None, False), "sft", params.model.dtype)
        stage_args.update(max_steps=steps, logging_steps=1, save_strategy="no", report_to=[])
        args = SFTConfig(**stage_args, num_train_epochs=sec.num_train_epochs, max_length=sec.max_length,
                         completion_only_loss=sec.completion_only_loss)
        trainer = trainer_cls(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                              callbacks=[Clock()])
        trainer.train()
    return times, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/curated")
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--steps", type=int, default=4, help="steps per trainer and round (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()

    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from toolrl.config import load_params
    from toolrl.hardware import resolve_bf16
    from toolrl.training.data import load_view
    from toolrl.training.fused_head import compact_lm_head
    from toolrl.training.sft_trainer import LeanSFTTrainer

    params = load_params(a.params)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    train = load_view(a.data, "train", "sft", None)

    class CompactHeadOnly(SFTTrainer):  # the first saving alone, to tell the two apart
        def compute_loss(self, *args, **kwargs):
            with compact_lm_head():
                return super().compute_loss(*args, **kwargs)

    trainers = {"trl": SFTTrainer, "compact LM head only": CompactHeadOnly,
                "ours (compact head, no right-padding mask)": LeanSFTTrainer}
    times: dict[str, list[float]] = {name: [] for name in trainers}
    losses: dict[str, list[float]] = {}
    for _ in range(a.rounds):
        for name, cls in trainers.items():
            t, loss = run(cls, a.model, train, tokenizer, params, a.steps)
            times[name].extend(t[1:])
            losses[name] = loss
    print(f"bf16: {resolve_bf16(params.sft.bf16)}, batch {params.sft.per_device_train_batch_size}, "
          f"{a.rounds} rounds x {a.steps - 1} timed steps per trainer")
    print("| trainer | s / step (mean) | median | speed-up |\n|---|---|---|---|")
    base = statistics.mean(times["trl"])
    for name, t in times.items():
        print(f"| {name} | {statistics.mean(t):.2f} | {statistics.median(t):.2f} | {base / statistics.mean(t):.2f}x |")
    print("losses by step (last round):")
    for name, loss in losses.items():
        print(f"  {name}: " + ", ".join(f"{x:.6f}" for x in loss))


if __name__ == "__main__":
    main()
