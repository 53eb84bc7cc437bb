"""What the agents are asked. Pure text building, so a prompt can be read and tested without an engine."""

from __future__ import annotations

import re
from collections.abc import Sequence

from resources.fabric import ChapterRow
from spica import SpicaAgent, SpicaBook

PREVIOUS_CHAPTER_WORDS = 350  # the tail of the last chapter a writer sees: bounded however long the book grows
OUTLINE_CHAPTERS = 12  # titles of the latest chapters, as the book's outline


def draft_messages(
    agent: SpicaAgent, book: SpicaBook, chapter_number: int, previous: Sequence[ChapterRow]
) -> list[dict[str, str]]:
    """The burst prompt: premise, the outline so far, the end of the last chapter, the task."""
    lines = [f"Book: {book.title}", f"Premise: {book.premise}", ""]
    if previous:
        lines.append("Chapters so far:")
        lines += [f"  {c.chapter_number}. {c.title} (by the {c.author})" for c in previous[-OUTLINE_CHAPTERS:]]
        tail = previous[-1].text.split()[-PREVIOUS_CHAPTER_WORDS:]
        lines += ["", f"The last chapter ends:\n\"\"\"\n… {' '.join(tail)}\n\"\"\"", ""]
    else:
        lines.append("No chapter has been written yet: you are opening the book.\n")
    lines.append(
        f"Write chapter {chapter_number} in your own voice, continuing the story. Start with a title line "
        f"'Chapter {chapter_number}: <title>'. Aim for 400 to 700 words; a draft cut off by the token cap "
        "loses points for lack of brevity."
    )
    return [{"role": "system", "content": agent.system_prompt()}, {"role": "user", "content": "\n".join(lines)}]


def ballot_messages(agent: SpicaAgent, ballot_prompt: str, repair: str | None = None) -> list[dict[str, str]]:
    """The review prompt; `repair` tells the voter what was wrong with its previous reply."""
    system = agent.system_prompt() + "\nYou are now a blind reviewer of your peers' anonymous drafts."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ballot_prompt}]
    if repair:
        messages.append(
            {"role": "user", "content": f"Your previous reply was rejected ({repair}). Reply again with the JSON only."}
        )
    return messages


_TITLE = re.compile(r"^\s*#*\s*(chapter\s+\d+\s*[:.\-–—]\s*)?(?P<title>.+?)\s*$", re.IGNORECASE)


def chapter_title(text: str, chapter_number: int) -> str:
    """The draft's own title line if it has a short one, else `Chapter N`."""
    for line in text.splitlines():
        if line.strip():
            match = _TITLE.match(line)
            title = match["title"].strip(" *#\"'") if match else ""
            if title and len(title.split()) <= 12 and len(title) <= 120:
                return title
            break
    return f"Chapter {chapter_number}"
