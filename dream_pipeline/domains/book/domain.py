"""The book as the loop's domain: `BookDomain` implements the Domain protocol (spica/domain.py) with the
book's own rules, and is registered once per book manifest shipped in spica/personas/."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar

from dream_pipeline.domains.book.canon import chapter_markdown
from dream_pipeline.domains.book.memory import BookContext
from dream_pipeline.domains.book.prompts import ballot_messages, chapter_title, draft_context, draft_messages
from dream_pipeline.tournament.anonymize import BALLOT_INSTRUCTIONS, Presentation, render_ballot_prompt
from dream_pipeline.tournament.deidentify import identity_terms
from resources.fabric import BookMemoryRows
from spica import SpicaAgent, SpicaBook, register_domain

# the deck's views of a book, by their module under deck/views/ (deck/views/__init__.py lists the same)
BOOK_VIEWS = ("matrix", "chopping_block", "ratings", "book", "lineage", "telemetry", "similar", "glossary")


class BookDomain(SpicaBook):
    """A book written one chapter per epoch: drafts are chapters, the canon is the book."""

    family: ClassVar[str] = "book"

    def burst_context(self, memory: BookMemoryRows, budget: int) -> BookContext:
        return draft_context(self, memory, budget)

    def burst_messages(self, agent: SpicaAgent, context: BookContext) -> list[dict[str, str]]:
        return draft_messages(agent, context)

    def review_criteria(self) -> str:
        return BALLOT_INSTRUCTIONS

    def review_prompt(self, presentation: Presentation, candidates: Mapping[str, str],
                      shown: Mapping[str, int] | None = None, context: Any = None) -> str:
        return render_ballot_prompt(presentation, candidates, shown)

    def review_messages(self, agent: SpicaAgent, prompt: str, repair: str | None = None) -> list[dict[str, str]]:
        return ballot_messages(agent, prompt, repair)

    def identity_terms(self, seated: Sequence[Mapping[str, Any]], used_names: Iterable[str]) -> tuple[str, ...]:
        """Every name and role word of the book's agents: the cast, the reserve, everyone ever seated."""
        personas = [*self.manifest.get("cast", ()), *self.manifest.get("reserve", ()), *seated]
        return identity_terms([*personas, *sorted(used_names)])

    def canon_entry(self, winner_text: str, number: int) -> tuple[str, str]:
        return chapter_title(winner_text, number), winner_text

    def canon_markdown(self, number: int, title: str, author: str, text: str, world: int | None = None) -> str:
        return chapter_markdown(number, title, author, text, world)

    def deck_views(self) -> tuple[str, ...]:
        return BOOK_VIEWS


def shipped_books() -> tuple[str, ...]:
    """The book manifests shipped in spica/personas/ (each one a book the loop can run)."""
    folder = resources.files("spica.personas")
    return tuple(sorted(entry.name.removesuffix(".json") for entry in folder.iterdir()
                        if entry.name.endswith(".json")))


for _name in shipped_books():
    register_domain(_name)(BookDomain)
