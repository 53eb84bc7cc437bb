"""Deterministic embeddings by feature hashing, so similarity search works offline.

Lower-cased word unigrams and bigrams are hashed with BLAKE2b (stable across processes, unlike
Python's salted `hash`) into a signed bucket of a `dim`-sized vector, which is then
L2-normalised. Texts sharing words and phrases land near each other; unrelated texts are
nearly orthogonal. It is a bag of words, not semantics, and that is all the pipeline's novelty
and retrieval signals need from a simulator.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
BIGRAM_WEIGHT = 0.5


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
    return (h >> 1) % dim, (1.0 if h & 1 else -1.0)


def embed(text: str, dim: int) -> list[float]:
    """A unit vector of length `dim` for `text` (an empty text maps to a fixed unit vector)."""
    words = _WORD_RE.findall(text.lower())
    vec = [0.0] * dim
    features: list[tuple[str, float]] = [(f"u:{w}", 1.0) for w in words]
    features += [(f"b:{a} {b}", BIGRAM_WEIGHT) for a, b in zip(words, words[1:], strict=False)]
    if not features:
        features = [("empty:", 1.0)]
    for feature, weight in features:
        i, sign = _bucket(feature, dim)
        vec[i] += sign * weight
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        i, sign = _bucket("empty:", dim)
        vec[i], norm = sign, 1.0
    return [v / norm for v in vec]


def to_base64(vec: list[float]) -> str:
    """The `encoding_format="base64"` form: little-endian float32, as OpenAI sends it."""
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
