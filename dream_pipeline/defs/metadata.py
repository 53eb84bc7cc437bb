"""What the Dagster jobs show in their materialization metadata: tables, and a committed chapter."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from tabulate import tabulate

from dream_pipeline.epoch import replay
from resources.fabric import ChapterRow, EpochRecord, StateFabric
from spica import SpicaDomain


def markdown_table(rows: Sequence[dict], floatfmt: str = ".1f") -> str:
    """Rows as a Markdown (pipe) table for Dagster metadata; a missing value is an empty cell."""
    if not rows:
        return "_(none)_"
    return tabulate(rows, headers="keys", tablefmt="pipe", floatfmt=floatfmt)


def chapter_metadata(chapter: ChapterRow, domain: SpicaDomain) -> dict:
    """A committed canon entry (a chapter of a book) as the epoch run and a promotion show it."""
    return {
        "chapter_number": chapter.chapter_number,
        "title": chapter.title,
        "author": chapter.author,
        "chapter": dg.MetadataValue.md(domain.canon_markdown(chapter.chapter_number, chapter.title, chapter.author,
                                                             chapter.text)),
    }


def replay_failure(mismatch: replay.ReplayMismatch) -> dg.Failure:
    """A replay that differs from its commit fails its step, the differences in the metadata."""
    return dg.Failure(
        description=mismatch.description,
        metadata={"replay": "MISMATCH",
                  "differences": dg.MetadataValue.md("\n".join(f"- {line}" for line in mismatch.shown))},
    )


def verify_replay(fabric: StateFabric, epoch: EpochRecord, replayed: dict) -> dict:
    """`epoch/replay.py`'s verification as a step sees it: its metadata, or the step's failure."""
    try:
        return replay.verify_replay(fabric, epoch, replayed)
    except replay.ReplayMismatch as mismatch:
        raise replay_failure(mismatch) from None
