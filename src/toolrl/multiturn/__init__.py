"""Multi-turn agentic tool use on BFCL's executable environments.

`cases` reads BFCL's multi-turn categories (several user turns, ground-truth calls per turn),
`environment` runs a case's tools for one rollout (fresh state, every bad call a tool message),
`trajectory` holds what one conversation did, in the shape BFCL's multi-turn checker reads, `answers`
reads BFCL's ground-truth call strings without eval, `split` says which scenarios train and which are
held out for evaluation (one answer for curate and evaluate), and `loop.converse` is the one
conversation loop (`policy.HFPolicy` drives it with a transformers model, `rollouts` plugs it into
GRPO). docs/MULTI_TURN.md tells the whole story.
"""
