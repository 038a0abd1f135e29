"""Multi-turn conversations with and without carried caches, side by side (issue #17 / #19).

Greedy `converse` over held-out BFCL multi-turn cases (the evaluate stage's sample: `multi_turn.seed`,
`evaluate.seed`), all cases of a run in one batch, as the evaluate stage runs a batch. `carry` is
`HFPolicy` as the stages use it (each conversation's cache extended by the tokens appended since its
last message, `toolrl.decode.PrefixCaches`); `fresh` prefills every conversation's whole sequence
again each round (the path before). The two runs alternate and must produce the same tokens; the
table gives wall seconds, model messages, and the prefilled tokens (what the carried caches save).

    .venv/bin/python bench/conversations.py --model models/base --cases 4 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import time

import torch

from toolrl.decode import PrefixCaches, prompt_cache


class FreshPrefill(PrefixCaches):
    """Stores nothing: every round prefills each prompt from its first token (the path before)."""

    def cache(self, model, tokens, device):
        return prompt_cache(model, list(tokens), device)


def run(args: argparse.Namespace) -> None:
    from toolrl.evaluation.conversations import load_category
    from toolrl.models import load_model
    from toolrl.multiturn.loop import Limits, converse
    from toolrl.multiturn.policy import HFPolicy
    from toolrl.schema.multi_turn import MultiTurnParams

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, dtype="float32")
    model.eval()
    cases = [c.gold for c in load_category(args.category, MultiTurnParams(), args.cases)]
    limits = Limits(max_new_tokens=args.max_new_tokens, max_steps_per_turn=args.max_steps_per_turn,
                    max_total_tokens=args.max_total_tokens)
    prefilled: list[int] = []
    model.register_forward_pre_hook(lambda m, a, kw: prefilled.append(kw["input_ids"].size(1))
                                    if kw["input_ids"].size(1) > 1 else None, with_kwargs=True)
    rows, tokens = [], {}
    for repeat in range(args.repeats):
        for name in ("fresh", "carry") if repeat % 2 == 0 else ("carry", "fresh"):
            prefilled.clear()
            policy = HFPolicy(model, tokenizer, prefixes=FreshPrefill() if name == "fresh" else None)
            start = time.perf_counter()
            rollouts = converse(cases, policy, limits)
            seconds = time.perf_counter() - start
            out = [r.completion_ids for r in rollouts]
            assert tokens.setdefault(name, out) == out
            messages = sum(len(t.steps) for r in rollouts for t in r.trajectory.turns)
            rows.append((name, seconds, messages, sum(prefilled), sum(r.length for r in rollouts)))
    assert tokens["fresh"] == tokens["carry"], "carried caches changed the conversations"
    best = {name: min((r for r in rows if r[0] == name), key=lambda r: r[1]) for name in ("fresh", "carry")}
    print(f"{len(cases)} x {args.category} cases, batch {len(cases)}, {args.max_new_tokens} new tokens a message, "
          f"best of {args.repeats} per path; same tokens: yes")
    print("| path | s | model messages | tokens prefilled | tokens in the conversations | speed-up |")
    print("|---|---|---|---|---|---|")
    for name in ("fresh", "carry"):
        _, s, m, p, n = best[name]
        print(f"| {name} | {s:.1f} | {m} | {p} | {n} | {best['fresh'][1] / s:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--category", default="multi_turn_base")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-steps-per-turn", type=int, default=5)
    parser.add_argument("--max-total-tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
