"""How much each photo of one place counts when their maps are multiplied (near-duplicates count once).

Rule: the fused map is ``prod_i f_i ** t_i`` with ``t_i = 1 / sum_j s_ij``, where ``s_ij`` in [0, 1] is how
much photos i and j are the same picture (``s_ii = 1``). k copies of one photo each get ``t = 1/k``, so
together they count exactly once; unrelated photos (``s = 0``) count fully; in between, partly. The
similarity comes from perceptual hashes (pHash, 64 bits) of the pictures: Hamming distance up to
``SAME_BITS`` (resized or recompressed copies) is the same picture (s = 1), from ``OTHER_BITS`` on they are
different pictures (s = 0), linear in between. Without hashes, files with the same SHA-256 are the same
picture and every other pair is unrelated. Video frames (phase 2) fit the same rule with a similarity from
their hashes and their distance in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAME_BITS = 6
OTHER_BITS = 20


@dataclass(frozen=True)
class Tempering:
    """Exponent of each photo's map in the product, and the rule that gave it."""

    weights: tuple[float, ...]
    rule: str
    similarity: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def independent(cls, count: int) -> "Tempering":
        return cls(tuple([1.0] * count), "independent photos: every map counts fully")

    @classmethod
    def from_similarity(cls, similarity: np.ndarray, rule: str) -> "Tempering":
        s = np.clip(np.asarray(similarity, np.float64), 0.0, 1.0)
        if s.ndim != 2 or s.shape[0] != s.shape[1]:
            raise ValueError(f"similarity must be a square matrix; got shape {s.shape}")
        s = np.maximum(s, s.T)
        np.fill_diagonal(s, 1.0)
        weights = 1.0 / s.sum(axis=1)
        return cls(tuple(float(w) for w in weights), rule, tuple(tuple(float(v) for v in row) for row in s))

    @classmethod
    def from_hashes(cls, hashes: Sequence[str | None]) -> "Tempering":
        """From 64-bit pHashes as hex strings (None where a photo has none: unrelated to the others)."""
        n = len(hashes)
        s = np.eye(n)
        values = [None if h is None else int(h, 16) for h in hashes]
        for i in range(n):
            for j in range(i + 1, n):
                if values[i] is None or values[j] is None:
                    continue
                s[i, j] = s[j, i] = hash_similarity(bin(values[i] ^ values[j]).count("1"))
        return cls.from_similarity(s, f"pHash: same picture at <= {SAME_BITS} bits apart, different from "
                                      f"{OTHER_BITS}; t_i = 1 / sum_j s_ij")

    @classmethod
    def from_digests(cls, digests: Sequence[str | None]) -> "Tempering":
        """Identical files (same SHA-256) are one picture; everything else is unrelated."""
        n = len(digests)
        s = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                if digests[i] and digests[i] == digests[j]:
                    s[i, j] = s[j, i] = 1.0
        return cls.from_similarity(s, "identical files (SHA-256) count once; t_i = 1 / sum_j s_ij")

    def to_dict(self) -> dict:
        return {"weights": list(self.weights), "rule": self.rule, "similarity": [list(r) for r in self.similarity]}


def hash_similarity(bits_apart: int) -> float:
    """1 up to ``SAME_BITS``, 0 from ``OTHER_BITS``, linear in between."""
    return float(np.clip((OTHER_BITS - bits_apart) / (OTHER_BITS - SAME_BITS), 0.0, 1.0))
