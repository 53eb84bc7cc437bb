"""The `epochs` dynamic partitions: one partition per epoch of one book, keyed `<book>-<number>` (epoch/keys.py)."""

from __future__ import annotations

import dagster as dg

from dream_pipeline.epoch.keys import epoch_key, parse_epoch_key

epochs_partitions = dg.DynamicPartitionsDefinition(name="epochs")

__all__ = ["epoch_key", "epochs_partitions", "parse_epoch_key"]
