"""The `epochs` dynamic partitions: one partition per epoch of one book, keyed `<book>-<number>`."""

from __future__ import annotations

import re

import dagster as dg

epochs_partitions = dg.DynamicPartitionsDefinition(name="epochs")

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
