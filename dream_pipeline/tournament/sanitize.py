"""What engine text may become before it is stored: the one policy for drafts, ballots and summaries.

Model output is kept verbatim with two exceptions that PostgreSQL and UTF-8 force on us:

- NUL (U+0000): a PostgreSQL ``text`` or ``jsonb`` value cannot hold it;
- surrogate code points (U+D800..U+DFFF): they have no UTF-8 encoding, so psycopg cannot send them.
  A high surrogate directly followed by a low one (two UTF-16 halves, as a lenient decoder leaves
  them) is joined into the character it encodes; any other surrogate is alone and invalid.

Each such NUL and lone surrogate becomes U+FFFD (the replacement character), one for one, so lengths
and positions of everything else are kept. The policy is idempotent (already-stored text passes
unchanged, so a replayed answer gives the same draft) and text without NUL or surrogates is never
touched: SQL fragments, HTML, ``<script>``, instructions to the voter are data, stored as written.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REPLACEMENT", "storable_text", "storable_json", "unstorable_count"]

REPLACEMENT = "\ufffd"

_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _join_pair(match: re.Match[str]) -> str:
    high, low = match.group()
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: surrogate pairs joined, NUL and lone surrogates -> U+FFFD."""
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(REPLACEMENT, _PAIR.sub(_join_pair, text))


def unstorable_count(text: str) -> int:
    """How many characters `storable_text` replaces by U+FFFD (0: stored verbatim)."""
    return len(_UNSTORABLE.findall(_PAIR.sub(_join_pair, text))) if _UNSTORABLE.search(text) else 0


def storable_json(value: Any) -> Any:
    """A JSON-able value with `storable_text` applied to every string in it, keys included."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_json(k): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value
