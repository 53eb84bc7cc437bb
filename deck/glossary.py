"""The glossary of README.md ("## Glossary"), read from the README itself so there is one text to keep true;
the deck's help texts link to its view (`?view=glossary`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Glossary"


@functools.cache
def glossary() -> dict[str, str]:
    """Term → definition, in the README's order (an empty dict if the section is missing)."""
    text = README.read_text(encoding="utf-8")
    start = text.find(SECTION)
    if start < 0:
        return {}
    body = text[start + len(SECTION):].split("\n## ", 1)[0]
    rows = re.findall(r"^\| \*\*(.+?)\*\* \| (.+?) \|$", body, re.M)
    return {term.replace("**", ""): definition for term, definition in rows}


def has_term(term: str) -> bool:
    """Whether `term` is in the glossary, alone or in a row of several (`cast, reserve, mutation`)."""
    return any(term in (t.strip() for t in key.split(",")) for key in glossary())


def glossary_link(term: str) -> str:
    """A Markdown link to the glossary view, for a widget's help text."""
    return f"[{term}: see the glossary](?view=glossary)"
