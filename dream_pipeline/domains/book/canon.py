"""How a chapter of the book reads once it is in the canon: a heading, its author, its text."""

from __future__ import annotations


def chapter_markdown(number: int, title: str, author: str, text: str, world: int | None = None) -> str:
    """The chapter as Markdown (Dagster metadata of the epoch and of alternate worlds)."""
    heading = f"## Chapter {number}: {title}" + (f" (world {world})" if world is not None else "")
    return f"{heading}\n\n*by the {author}*\n\n{text}"
