"""The Tool-call Reward Model (TRM): a process reward model that scores every tool call, and its use in
GRPO with turn-level advantages. See docs/TRM.md.

- `calls`: a completion's tool calls with character spans.
- `steps`: step records (context, call, label) and their tokenisation (label on the call's last token).
- `labels`: rule labels (necessity x quality against the ground truth); `judge`: an LLM judge labeler.
- `negatives`: hard negatives (perturbed correct calls) and label balance.
- `data`: the `trm_data` stage (policy rollouts -> data/trm/{train,val}.jsonl, card, stats).
- `model`, `trainer`: the classifier and its training (`trm` stage); `score`: score any completion's calls.
- `tracking`: the TRM in MLflow (logged as a pyfunc model and registered).
- `advantages`: turn-level (and pooled) call advantages; `grpo`: the GRPOTrainer subclass (`grpo_trm`).
- `cli`: `toolrl trm data|train|score|grpo`.
"""
