"""Step records (one per tool call) and their tokenisation for the TRM.

A step record is the context up to a call, the call, and its label:

    {"id", "prompt_id", "sample", "call_index",
     "prompt": [chat messages],  # system prompt listing the tools + the dialogue (formats.prompt_messages)
     "prefix": str,              # the completion's text before the call (thought, earlier calls)
     "call": str,                # the call's JSON line, exactly as the policy wrote it
     "label": 0 | 1,             # necessity x quality, from the configured labeler
     "necessity", "quality": 0 | 1, "reason": str,
     "rule_label": 0 | 1,        # the rule labeler's verdict, kept whatever labeled the record
     "labeler": "rule" | "judge" | "negative", "source": "policy" | "negative", "kind": str | None}

Tokenised, the model sees `chat_template(prompt, add_generation_prompt) + prefix + call`, cut right
after the call, and the label sits on the LAST token of the call; every other position is -100
(ignored by the loss). Because the LM is causal, the hidden state there has read the whole context
and the whole call and nothing after it. Training and scoring share `encode_step`, so they see the
same token boundaries. Too long a sequence loses tokens from the left (the system prompt first):
the call and the text just before it matter most. With `keep_called_tool`, a cut step opens with the
called tool's entry from the tool list (or a line saying the list has no such tool) whenever the cut
took it away: in a multi-turn step the ~3.5k-token opening is mostly tool descriptions, and without
its tool's parameters the TRM cannot see a missing or mistyped argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolrl.jsonl import read_jsonl
from toolrl.trm.calls import CallSpan

IGNORE = -100


def prompt_text(tokenizer: Any, prompt: list[dict[str, str]] | str) -> str:
    """The chat-templated prompt, ending where the assistant's turn starts (a string is taken as
    an already rendered prompt)."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def step_text(tokenizer: Any, prompt: list[dict[str, str]], prefix: str, call: str) -> str:
    return prompt_text(tokenizer, prompt) + prefix + call


def token_at_char(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the token whose character span covers position `char`."""
    for k in range(len(offsets) - 1, -1, -1):
        start, end = offsets[k]
        if start <= char < end:
            return k
    raise ValueError(f"no token covers character {char}")


def called_tool_head(tokenizer: Any, text: str, call: str, limit: int) -> tuple[list[int], int | None]:
    """(tokens that name the called tool's entry, where the entry starts in `text`), for a step cut to a
    window: the entry's own tokens, at most `limit` of them, or a line saying the prompt lists no such
    tool; nothing for a call that does not parse."""
    from toolrl.formats import listed_tool, parse_call

    try:
        name = parse_call(call).name
    except ValueError:
        return [], None
    entry = listed_tool(text, name)
    line = f"The called tool:\n{entry}\n" if entry else f"The called tool {name} is not in the tool list.\n"
    return tokenizer(line, add_special_tokens=False)["input_ids"][:limit], None if entry is None else text.rfind(entry)


def encode_step(tokenizer: Any, prompt: list[dict[str, str]], prefix: str, call: str,
                label: int | None = None, max_length: int | None = None,
                keep_called_tool: bool = False) -> dict[str, list[int]]:
    """input_ids, attention_mask and labels (the label on the call's last token, -100 elsewhere).

    `label=None` (scoring) still marks the position, with 1, so callers find it in `labels`.
    `keep_called_tool`: see the module doc.
    """
    if not call:
        raise ValueError("a step needs a non-empty call text")
    text = step_text(tokenizer, prompt, prefix, call)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    pos = token_at_char(offsets, len(text) - 1)
    ids = ids[: pos + 1]  # nothing after the call's last token (a merged trailing token is impossible: the text ends here)
    if max_length is not None and len(ids) > max_length:
        head: list[int] = []
        if keep_called_tool:
            head, at = called_tool_head(tokenizer, text, call, max_length // 2)
            if at is not None and at >= offsets[len(ids) - max_length][0]:
                head = []  # the plain cut keeps the entry
        ids = head + ids[len(ids) - max_length + len(head):]
        pos = len(ids) - 1
    labels = [IGNORE] * len(ids)
    labels[pos] = 1 if label is None else int(label)
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def label_position(labels: list[int]) -> int:
    """Where the label sits in an encoded step."""
    marked = [i for i, v in enumerate(labels) if v != IGNORE]
    if len(marked) != 1:
        raise ValueError(f"an encoded step has exactly one labelled position, found {len(marked)}")
    return marked[0]


def policy_steps(prompt_id: str, sample: int, prompt: list[dict[str, str]], completion: str,
                 spans: list[CallSpan]) -> list[dict[str, Any]]:
    """Unlabelled step records for every call of one sampled completion."""
    return [
        {
            "id": f"{prompt_id}/s{sample}/c{span.index}",
            "prompt_id": prompt_id,
            "sample": sample,
            "call_index": span.index,
            "prompt": prompt,
            "prefix": completion[: span.start],
            "call": span.text,
            "source": "policy",
            "kind": None,
        }
        for span in spans
    ]


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """Step records of a `data/trm` split, each checked for the fields the trainer needs."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `toolrl trm data` (or `dvc repro trm_data`) first")
    rows = []
    for n, row in read_jsonl(path, "rerun `toolrl trm data`"):
        missing = [k for k in ("prompt", "prefix", "call", "label") if k not in row]
        if missing or row["label"] not in (0, 1):
            raise ValueError(f"{path} line {n}: a step record needs prompt, prefix, call and a 0/1 label "
                             f"(missing {missing or 'a valid label'}); rerun `toolrl trm data`")
        rows.append(row)
    return rows
