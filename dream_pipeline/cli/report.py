"""Terminal renderings of the book and the standings."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from dream_pipeline.domains.book.prompts import chapter_body
from dream_pipeline.records import ChapterRow, Standing
from dream_pipeline.tournament.selection import describe_margin


def render_outline(chapters: Sequence[ChapterRow], heading: str = "The book so far", entry: str = "chapter") -> str:
    lines = [f"{heading} ({plural(len(chapters), entry)}):"]
    lines += [
        f"  {c.chapter_number:>3}. {c.title}  — the {c.author}"
        + (f", {describe_margin(c.margin)}" if describe_margin(c.margin) else "")
        for c in chapters
    ]
    return "\n".join(lines) + "\n"


def render_chapters(chapters: Sequence[ChapterRow], width: int = 96) -> str:
    out = []
    for c in chapters:
        header = f"Chapter {c.chapter_number}: {c.title}   (by the {c.author}, {c.epoch_key})"
        body = "\n\n".join(
            textwrap.fill(paragraph, width=width)
            for paragraph in chapter_body(c.text, c.title).split("\n\n") if paragraph.strip()
        )
        out.append(f"{header}\n{'=' * min(len(header), width)}\n{body}\n")
    return "\n".join(out)


def plural(count: int, noun: str) -> str:
    """`1 chapter`, `2 chapters`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def render_standings(standings: Sequence[Standing]) -> str:
    width = max([18, *(len(s.name) for s in standings)])  # a long mutation name must not push the columns
    lines = ["Standings:", f"  {'#':>2}  {'agent':<{width}} {'Elo':>7} {'epochs':>6} {'wins':>4}  status"]
    for i, s in enumerate(standings, start=1):
        rating = f"{s.rating:7.1f}" if s.rating is not None else "      —"
        status = "alive" if s.alive else "retired"
        if s.origin != "cast":
            status += f" (joined in epoch {s.joined_epoch}, {s.origin})"
        lines.append(f"  {i:>2}  {s.name:<{width}} {rating} {s.epochs:>6} {s.wins:>4}  {status}")
    return "\n".join(lines) + "\n"
