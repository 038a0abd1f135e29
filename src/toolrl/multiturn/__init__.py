"""Multi-turn agentic tool use on BFCL's executable environments.

`cases` reads BFCL's multi-turn categories (several user turns, ground-truth calls per turn),
`environment` runs a case's tools for one rollout (fresh state, every bad call a tool message), and
`trajectory` holds what one conversation did, in the shape BFCL's multi-turn checker reads; `split`
says which scenarios train and which are held out for evaluation (one answer for curate and evaluate).
"""
