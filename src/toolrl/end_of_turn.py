"""Where a model's turn ends: the chat template's end-of-turn token, the stop ids that include it, and a
completion cut there. Shared by evaluation, rollouts and TRM-data sampling, in a module of its own so
that a change to an evaluation backend does not rerun the stages that only need these three."""

from __future__ import annotations

END_OF_TURN = "<|im_end|>"


def stop_ids(tokenizer) -> list[int]:
    """The tokenizer's eos and the end-of-turn token (when the vocabulary has it)."""
    ids = {tokenizer.eos_token_id}
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end, int) and end != tokenizer.unk_token_id:
        ids.add(end)
    return sorted(i for i in ids if i is not None)


def cut_at_end_of_turn(text: str) -> str:
    index = text.find(END_OF_TURN)
    return text[:index] if index >= 0 else text
