"""TRM-guided GRPO (`grpo_trm`): TRL's GRPOTrainer with per-token, turn-level advantages.

TRL 1.16 computes the outcome advantage of each completion in `_generate_and_score_completions`
(ToolRL reward, normalised within the group as `grpo.scale_rewards` says) and its `_compute_loss`
accepts advantages of shape (B, T) as well as (B,). So the subclass only extends one generation pass
(`_rollouts`, the shared-prefix trainer's wrapper of that method, which dynamic sampling's further
passes also run): after TRL has generated and scored, it

1. decodes each completion and finds its calls (`call_spans`),
2. scores every call with the TRM (one batched pass),
3. normalises call i against call i of the group's other completions (`advantages.call_advantages`,
   or all calls pooled for the ablation), across processes when groups span them,
4. maps each call's characters to its completion tokens, and hands TRL
   A[b, t] = A_outcome[b] + alpha * A_call(b, i) on the tokens of call i, A_outcome[b] elsewhere.

Multi-turn rollouts (`multiturn.rollouts.bfcl_rollout_func`, recognised by the `trajectory` TRL merges
into each input) take the same four steps over the conversation: each model message's calls are read
in their context and placed on the message's own tokens (`trm.multi_turn.message_calls`; environment
tokens never carry a call term, and TRL's loss masks them anyway), and "call i" is the position
(user turn, call number in that turn). It then also logs `trm/turns_completed`, and keeps the last
batch's per-call scores in `last_call_scores` for sample tables.

It logs `trm/mean_calls` (calls per completion: the reward-hacking signal), TRM score statistics,
the size of the call term, and `trm/multi_call_groups`, the share of groups with a completion of two or
more calls: only there do turn-level and pooled advantages differ. The stage runs the training package's GRPO stage (`run_grpo`) with this
trainer, the grpo section's settings (same init, same budget) and its own output folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from accelerate.utils import gather_object

from toolrl.config import GrpoParams, Params
from toolrl.training.shared_prefix import SharedPrefixGRPOTrainer
from toolrl.trm.advantages import call_advantages, multi_call_group_share, token_advantages
from toolrl.trm.calls import call_token_spans

STAGE = "grpo_trm"


class TrmGRPOTrainer(SharedPrefixGRPOTrainer):
    """GRPOTrainer whose advantages carry the TRM's turn-level call term (see the module doc)."""

    supports_multi_turn = True  # scores each model message's calls in context (toolrl.trm.multi_turn)

    def __init__(self, *args: Any, trm_scorer: Any, alpha: float, call_advantage: str = "turn_level",
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_call_scores: list[list[dict[str, Any]]] = []  # multi-turn: the last batch's calls and scores
        self.trm = trm_scorer
        self.trm.model.to(self.accelerator.device)
        self.alpha = alpha
        self.call_advantage = call_advantage

    def _rollouts(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._rollouts(inputs)
        mode = "train" if self.model.training else "eval"
        # multi-turn rollouts (multiturn.rollouts.bfcl_rollout_func) hand TRL a `trajectory` per row,
        # which TRL merges into `inputs`
        multi_turn = "trajectory" in inputs[0]
        keys, scores, token_spans = (self._multi_turn_calls(inputs, out) if multi_turn
                                     else self._single_turn_calls(inputs, out))
        # A group's completions may live on several processes: normalise over all, keep ours.
        all_scores, all_keys = gather_object(scores), gather_object(keys)
        groups = self.num_generations if mode == "train" else self.num_generations_eval
        adv_all = call_advantages(all_scores, groups, self.call_advantage, scale=self.scale_rewards != "none",
                                  keys=all_keys)
        start = self.accelerator.process_index * len(inputs)
        adv = adv_all[start:start + len(inputs)]
        if multi_turn:  # the sample table shows each call's advantage: where turn-level and pooled differ
            for row, row_adv in zip(self.last_call_scores, adv, strict=True):
                for call, a in zip(row, row_adv, strict=True):
                    call["advantage"] = a
        out["advantages"] = token_advantages(out["advantages"], adv, token_spans, out["completion_ids"].size(1),
                                             self.alpha)
        self._log_trm(mode, all_scores, adv_all, groups)
        if multi_turn:
            from toolrl.multiturn.trajectory import Trajectory

            done = gather_object([Trajectory.from_dict(x["trajectory"]).turns_completed for x in inputs])
            self._metrics[mode]["trm/turns_completed"].append(sum(done) / max(len(done), 1))
        return out

    def _single_turn_calls(self, inputs: list[dict[str, Any]], out: dict[str, Any]) -> tuple[list, list, list]:
        """(position keys, scores, token spans) of each completion's calls: one completion, one message."""
        tokenizer = self.processing_class
        rows = [ids[mask.bool()].tolist() for ids, mask in zip(out["completion_ids"], out["completion_mask"],
                                                               strict=True)]
        texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
        spans, scores = self.trm.score_completions([x["prompt"] for x in inputs], texts)
        token_spans = [call_token_spans(tokenizer, r, s) for r, s in zip(rows, spans, strict=True)]
        return [list(range(len(s))) for s in scores], scores, token_spans

    def _multi_turn_calls(self, inputs: list[dict[str, Any]], out: dict[str, Any]) -> tuple[list, list, list]:
        """(position keys, scores, token spans) of each conversation's calls, each call read in its context
        (`trm.multi_turn.message_calls`); `last_call_scores` keeps them per call for sample tables."""
        from toolrl.multiturn.trajectory import Trajectory
        from toolrl.trm.multi_turn import message_calls

        per_row = []
        for x, p_ids, p_mask, c_ids, c_mask, env in zip(inputs, out["prompt_ids"], out["prompt_mask"],
                                                        out["completion_ids"], out["completion_mask"],
                                                        out["tool_mask"], strict=True):
            n = int(c_mask.sum())  # 0: TRL masked a truncated rollout out; it carries no loss to shape
            per_row.append([] if n == 0 else message_calls(
                self.processing_class, p_ids[p_mask.bool()].tolist(), c_ids[:n].tolist(), env[:n].tolist(),
                Trajectory.from_dict(x["trajectory"])))
        flat = iter(self.trm.score_steps([c.step for row in per_row for c in row]))
        scores = [[next(flat) for _ in row] for row in per_row]
        self.last_call_scores = [[{"turn": c.turn, "message": c.message, "call": c.call, "score": s}
                                  for c, s in zip(row, ss, strict=True)] for row, ss in zip(per_row, scores, strict=True)]
        return [[c.key for c in row] for row in per_row], scores, [[c.tokens for c in row] for row in per_row]

    def _log_trm(self, mode: str, scores: list[list[float]], adv: list[list[float]], groups: int) -> None:
        flat = [s for row in scores for s in row]
        n = max(len(scores), 1)
        metrics = {
            "trm/mean_calls": sum(len(r) for r in scores) / n,
            "trm/completions_with_calls": sum(bool(r) for r in scores) / n,
            "trm/score_mean": sum(flat) / len(flat) if flat else 0.0,
            "trm/good_call_share": sum(s >= self.trm.threshold for s in flat) / len(flat) if flat else 0.0,
            "trm/first_call_score_mean": (sum(r[0] for r in scores if r) / max(1, sum(bool(r) for r in scores))),
            "trm/call_term_abs_mean": (self.alpha * sum(abs(a) for row in adv for a in row) / len(flat)
                                       if flat else 0.0),
            # Where the turn-level and pooled ablations can differ at all (0: they are identical).
            "trm/multi_call_groups": multi_call_group_share(scores, groups),
        }
        for key, value in metrics.items():
            self._metrics[mode][key].append(float(value))


def trm_folder(params: Params) -> Path:
    folder = Path(params.trm.grpo.reward_model or params.trm.model.output_dir)
    if not (folder / "trm.json").exists():
        raise FileNotFoundError(f"{folder} holds no trained TRM (no trm.json): run `toolrl trm train` (or "
                                "`dvc repro trm`) first, or set trm.grpo.reward_model")
    return folder


def grpo_trm_section(params: Params) -> GrpoParams:
    """The grpo section (same init, same budget, same reward) with grpo_trm's outputs."""
    g = params.trm.grpo
    return params.grpo.model_copy(update={"output_dir": g.output_dir, "plots_file": g.plots_file,
                                          "metrics_file": g.metrics_file, "register_as": g.register_as})


def run_grpo_trm(params: Params, fresh: bool = False, say: Callable[[str], None] = print) -> Any:
    """Train (or resume, or reuse) the TRM-guided GRPO model into `trm.grpo.output_dir`."""
    import json

    from toolrl.hardware import resolve_dtype
    from toolrl.training.grpo import run_grpo
    from toolrl.trm.score import TrmScorer

    g = params.trm.grpo
    folder = trm_folder(params)
    meta = json.loads((folder / "trm.json").read_text())
    dtype = resolve_dtype(g.score_dtype)
    scorer = TrmScorer(folder, batch_size=g.score_batch_size, dtype=dtype)
    say(f"TRM-guided GRPO: {g.advantage} call advantages, alpha {g.alpha}, TRM {folder} ({dtype} scoring)")
    return run_grpo(
        params, fresh=fresh, say=say, name=STAGE, section=grpo_trm_section(params),
        trainer_cls=TrmGRPOTrainer,
        trainer_kwargs={"trm_scorer": scorer, "alpha": g.alpha, "call_advantage": g.advantage},
        fingerprint_extra={"trm": {"alpha": g.alpha, "advantage": g.advantage, "folder": str(folder), "score_dtype": dtype,
                                   "trm_run": meta.get("mlflow_run_id"), "trm_step": meta.get("global_step")}},
    )
