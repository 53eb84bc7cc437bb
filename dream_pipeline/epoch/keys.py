"""Epoch keys: one per epoch of one domain, `<domain>-<number>`, e.g. `space_time-00007`.

The key format of the `epochs` partitions (defs/epoch/partitions.py); pure, so the use cases under epoch/ can
read a key without importing Dagster.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^(?P<book>[a-z][a-z0-9_]*)-(?P<number>\d{5,})$")


def epoch_key(book: str, number: int) -> str:
    """`space_time-00007`: sortable as text, and says which book it belongs to."""
    if number < 1:
        raise ValueError(f"epoch numbers start at 1, got {number}")
    key = f"{book}-{number:05d}"
    parse_epoch_key(key)
    return key


def parse_epoch_key(key: str) -> tuple[str, int]:
    match = _KEY.match(key)
    if not match:
        raise ValueError(f"not an epoch partition key: {key!r} (expected like 'space_time-00001')")
    return match["book"], int(match["number"])
