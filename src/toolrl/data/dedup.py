"""Exact and near-duplicate removal; the first occurrence (in mix order) is kept.

Both compare the normalised dialogue + tool names + target, not the system prompt: every prompt
shares the same instructions, and long tool documentation would make two different questions about
the same tools look alike.

- exact: the SHA-256 of the normalised text (tools' full schemas included);
- near: token-set Jaccard similarity >= `threshold`, found with MinHash LSH (128 permutations in
  32 bands of 4, so pairs at 0.9 are candidates with probability ~1) and confirmed exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from toolrl.data.schema import CanonicalExample

PERMUTATIONS, BANDS = 128, 32
ROWS = PERMUTATIONS // BANDS
_PRIME = np.uint64((1 << 61) - 1)
_WORD = re.compile(r"\w+")


@dataclass
class Duplicate:
    id: str
    source: str
    duplicate_of: str
    kind: str  # "exact" or "near"
    similarity: float


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def content_text(example: CanonicalExample) -> str:
    """What two examples must share to be duplicates: the dialogue, the tools offered, the target."""
    dialogue = "\n".join(f"{m.role}: {m.content}" for m in example.conversation)
    names = " ".join(sorted(t.name for t in example.tools))
    target = json.dumps(example.target.model_dump(exclude={"thought"}), sort_keys=True, ensure_ascii=False)
    return normalise(f"{dialogue}\n{names}\n{target}")


def exact_key(example: CanonicalExample) -> str:
    tools = json.dumps([t.model_dump() for t in sorted(example.tools, key=lambda t: t.name)], sort_keys=True)
    return hashlib.sha256(f"{content_text(example)}\n{normalise(tools)}".encode()).hexdigest()


def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")


class MinHasher:
    def __init__(self) -> None:
        rng = np.random.default_rng(20240607)  # fixed: signatures must not depend on params
        self.a = rng.integers(1, 1 << 32, PERMUTATIONS, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 32, PERMUTATIONS, dtype=np.uint64)
        self.cache: dict[str, int] = {}

    def signature(self, tokens: set[str]) -> np.ndarray:
        hashes = np.fromiter((self.cache.setdefault(t, _token_hash(t)) for t in sorted(tokens)),
                             dtype=np.uint64, count=len(tokens))
        # (a*h + b) mod p, with h, a, b < 2^32 so nothing overflows 64 bits
        return ((self.a[:, None] * hashes[None, :] + self.b[:, None]) % _PRIME).min(axis=1)


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(examples: list[CanonicalExample], threshold: float) -> tuple[list[CanonicalExample], list[Duplicate]]:
    """(kept examples, duplicates) for examples in mix order."""
    kept: list[CanonicalExample] = []
    dups: list[Duplicate] = []
    seen: dict[str, str] = {}
    hasher = MinHasher()
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    token_sets: list[set[str]] = []
    for ex in examples:
        key = exact_key(ex)
        if key in seen:
            dups.append(Duplicate(ex.id, ex.source, seen[key], "exact", 1.0))
            continue
        tokens = set(_WORD.findall(content_text(ex)))
        match = None
        if threshold < 1.0 and tokens:
            sig = hasher.signature(tokens)
            bands = [(b, sig[b * ROWS:(b + 1) * ROWS].tobytes()) for b in range(BANDS)]
            candidates = sorted({i for band in bands for i in buckets.get(band, ())})
            for i in candidates:
                sim = jaccard(tokens, token_sets[i])
                if sim >= threshold:
                    match = (kept[i].id, sim)
                    break
        if match:
            dups.append(Duplicate(ex.id, ex.source, match[0], "near", round(match[1], 4)))
            continue
        seen[key] = ex.id
        if threshold < 1.0 and tokens:
            for band in bands:
                buckets[band].append(len(kept))
        kept.append(ex)
        token_sets.append(tokens)
    return kept, dups
