"""Completion cache: what a model generated for a benchmark case, so a rerun generates only what is new.

Layout: `<cache_dir>/<model hash>/<generation key>/<benchmark>/<category>.jsonl`, one line per case
`{"id", "prompt", "completion"}` where `prompt` is the SHA-256 of the chat messages (for a BFCL
multi-turn case, of the whole case, and `completion` is the conversation's trajectory as JSON). The model hash
covers the weights, tokenizer and chat template; the generation key covers what changes the output
of greedy decoding (backend, dtype, max_new_tokens); the prompt hash covers the prompt format, the
tools and the dialogue. Batch size is left out: with left padding greedy decoding gives the same
tokens at any batch size (up to float rounding: in bf16, a near-tie flips now and then), and it is a
throughput knob.

Grades are not cached: grading takes milliseconds, so a fix in a grader applies to cached
completions at once. Raising `limit` generates only the added cases. A line cut short by a crash is
ignored (that case is generated again).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from toolrl.evaluation.records import BenchmarkCase


def prompt_key(example: BenchmarkCase) -> str:
    """SHA-256 of what the model is shown: the prompt, and for a multi-turn case the rest of the conversation."""
    shown: object = example.messages
    if example.conversation:  # single-turn keys stay what they were, so their cache still hits
        shown = {"messages": example.messages, "conversation": example.conversation}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def generation_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


class CompletionCache:
    """Completions of one model under one generation setting."""

    def __init__(self, root: str | Path, model_hash: str, settings: dict[str, Any]):
        self.dir = Path(root) / model_hash[:16] / generation_key(settings)
        self.settings = settings

    def _file(self, benchmark: str, category: str) -> Path:
        return self.dir / benchmark / f"{category}.jsonl"

    def load(self, benchmark: str, category: str) -> dict[str, str]:
        """prompt hash -> completion for one category."""
        path = self._file(benchmark, category)
        out: dict[str, str] = {}
        if not path.exists():
            return out
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                out[row["prompt"]] = row["completion"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a partial line from an interrupted run: that case is generated again
        return out

    def add(self, benchmark: str, category: str, examples: list[BenchmarkCase], completions: list[str]) -> None:
        path = self._file(benchmark, category)
        path.parent.mkdir(parents=True, exist_ok=True)
        settings_file = self.dir / "settings.json"
        if not settings_file.exists():
            settings_file.write_text(json.dumps(self.settings, indent=2, sort_keys=True))
        with path.open("a", encoding="utf-8") as fh:
            for example, completion in zip(examples, completions, strict=True):
                fh.write(json.dumps({"id": example.id, "prompt": prompt_key(example), "completion": completion},
                                    ensure_ascii=False) + "\n")
