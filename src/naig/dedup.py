"""Near-duplicate dialogues in a data set, found with MinHash LSH (``datasketch``).

A small model run for tens of thousands of dialogues says the same things again; two
dialogues whose text (every turn, and each call as name and arguments) shares most of its
runs of ``SHINGLE`` words are near duplicates, and only the first is worth training on.
Similarity is the Jaccard index of those runs, estimated from ``PERMUTATIONS`` hashes;
streaming: each dialogue is compared with the ones kept before it.
"""

from __future__ import annotations

import re

from naig.dialogue import Record
from naig.errors import ConfigError

SHINGLE = 3
"""Words in a row that make one feature of a dialogue's text."""
PERMUTATIONS = 128
THRESHOLD = 0.8
"""Estimated Jaccard similarity from which two dialogues are near duplicates."""
INSTALL = "pip install 'naig[dedup]'"
_WORD = re.compile(r"\w+")


def _shingles(record: Record) -> set[str]:
    parts = []
    for m in record.messages:
        if m.role == "system":
            continue
        parts.append(m.content or "")
        parts += [f"{c.function.name} {c.function.arguments}" for c in m.tool_calls or []]
    words = _WORD.findall(" ".join(parts).lower())
    return {" ".join(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}


class NearDuplicates:
    """Tells, one record at a time, which earlier record a record nearly repeats."""

    def __init__(self, threshold: float = THRESHOLD):
        try:
            from datasketch import MinHash, MinHashLSH
        except ImportError:
            raise ConfigError(f"--dedup needs datasketch; install it with: {INSTALL}") from None
        self._minhash = MinHash
        self._index = MinHashLSH(threshold=threshold, num_perm=PERMUTATIONS)
        self._seen: set[str] = set()

    def earlier(self, record: Record) -> str | None:
        """The id of a record seen before that ``record`` nearly repeats; else None, and
        ``record`` is remembered."""
        signature = self._minhash(num_perm=PERMUTATIONS)
        signature.update_batch([s.encode() for s in _shingles(record)])
        found = self._index.query(signature)
        if found:
            return str(sorted(found)[0])
        if record.id not in self._seen:  # an id given twice is indexed once
            self._seen.add(record.id)
            self._index.insert(record.id, signature)
        return None


__all__ = ["INSTALL", "SHINGLE", "THRESHOLD", "NearDuplicates"]
