"""Score tool calls with a trained TRM: steps, whole completions, or a jsonl file (`toolrl trm score`).

Each call is scored as its own step record (`encode_step`: context up to the call, the call, read at
its last token), exactly as the model was trained. Steps are batched in token order, right-padded, and
the steps of a batch that share a prompt compute it once (toolrl.training.common_prefix).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolrl import formats
from toolrl.jsonl import parse_lines
from toolrl.training.common_prefix import shared_prefix_logits
from toolrl.trm.calls import CallSpan, call_spans
from toolrl.trm.model import load_trm, positive_probs
from toolrl.trm.steps import IGNORE, encode_step

Step = tuple[list[dict[str, str]], str, str]  # (prompt messages, prefix, call text)


class TrmScorer:
    def __init__(self, folder: str | Path, device: Any = None, batch_size: int = 8, max_length: int | None = None,
                 dtype: str = "float32"):
        self.model, self.tokenizer, self.meta = load_trm(folder, device, dtype)
        self.batch_size = batch_size
        self.max_length = max_length or int(self.meta.get("max_length", 1024))
        self.keep_called_tool = bool(self.meta.get("keep_called_tool", False))  # TRMs saved before it cut plainly
        self.threshold = float(self.meta.get("threshold", 0.5))

    @property
    def device(self) -> Any:
        return self.model.device

    def score_steps(self, steps: list[Step]) -> list[float]:
        """P(good call) for each (prompt, prefix, call)."""
        import torch

        if not steps:
            return []
        encoded = [encode_step(self.tokenizer, p, prefix, call, max_length=self.max_length,
                               keep_called_tool=self.keep_called_tool) for p, prefix, call in steps]
        # in token order, so the calls of one prompt (a GRPO group's completions) share a batch and
        # `shared_prefix_logits` computes their prompt once
        order = sorted(range(len(encoded)), key=lambda i: encoded[i]["input_ids"])
        scores = [0.0] * len(encoded)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            batch = [encoded[i] for i in order[start:start + self.batch_size]]
            width = max(len(e["input_ids"]) for e in batch)

            def padded(key: str, value: int, batch=batch, width=width) -> torch.Tensor:
                return torch.tensor([e[key] + [value] * (width - len(e[key])) for e in batch], device=self.device)

            labels = padded("labels", IGNORE)
            with torch.inference_mode():
                logits = shared_prefix_logits(self.model, padded("input_ids", pad), padded("attention_mask", 0))
            for i, p in zip(order[start:start + self.batch_size], positive_probs(logits, labels).tolist(), strict=True):
                scores[i] = p
        return scores

    def score_completions(self, prompts: list[list[dict[str, str]]],
                          completions: list[str]) -> tuple[list[list[CallSpan]], list[list[float]]]:
        """The calls of each completion and one score per call (one batched pass over all calls)."""
        spans = [call_spans(c) for c in completions]
        steps = [(p, c[: s.start], s.text) for p, c, ss in zip(prompts, completions, spans, strict=True) for s in ss]
        flat = iter(self.score_steps(steps))
        return spans, [[next(flat) for _ in ss] for ss in spans]


def _prompt_of(row: dict[str, Any]) -> list[dict[str, str]]:
    if isinstance(row.get("prompt"), list):
        return row["prompt"]
    if isinstance(row.get("tools"), list) and isinstance(row.get("conversation"), list):
        return formats.prompt_messages(row["tools"], row["conversation"])
    raise ValueError("needs `prompt` (chat messages) or `tools` + `conversation`")


def _completion_of(row: dict[str, Any]) -> str:
    try:
        return formats.assistant_text(row.get("completion"))
    except TypeError:
        raise ValueError("needs `completion` (a string or chat messages)") from None


def score_file(folder: str | Path, input_path: str | Path, output: Any, batch_size: int = 8) -> dict[str, int]:
    """Score every row of a jsonl file into `output` (a text stream), one row out per row in; a row
    that cannot be scored comes out with an `error` instead of `calls`."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path} not found: give a jsonl file of {{prompt, completion}} rows")
    scorer = TrmScorer(folder, batch_size=batch_size)
    rows, good = [], []
    for n, row, problem in parse_lines(input_path):
        try:
            if problem:
                raise ValueError(problem)
            if not isinstance(row, dict):
                raise ValueError("line is not a JSON object")
            rows.append({"id": row.get("id", n), "prompt": _prompt_of(row), "completion": _completion_of(row)})
            good.append(len(rows) - 1)
        except ValueError as exc:
            rows.append({"id": n, "error": f"line {n}: {exc}"})
    ok = [rows[i] for i in good]
    spans, scores = scorer.score_completions([r["prompt"] for r in ok], [r["completion"] for r in ok])
    for r, ss, sc in zip(ok, spans, scores, strict=True):
        r["calls"] = [{"index": s.index, "call": s.text, "score": round(p, 6), "good": p >= scorer.threshold}
                      for s, p in zip(ss, sc, strict=True)]
        del r["prompt"], r["completion"]
    for r in rows:
        output.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "errors": len(rows) - len(good), "calls": sum(len(s) for s in spans)}
