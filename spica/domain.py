"""The Domain protocol: what the D-REAM loop asks of every domain it runs (a book, CodeRepair, ...).

A domain is a SPICA derivative (so the registry accepts it and the pytest plugin recognises it) that
implements the methods below. The loop takes one only from the registry (`dream_pipeline.domains.load_domain`,
by the name an experiment gives it); the epoch's steps call these methods and nothing book-specific:

- manifest and cast: `load`, `cast_size`, `initial_cast`, `reserve`, `recruit` (the Reaper's pool);
- what an epoch poses whatever the canon holds: `posed` (CodeRepair: its task; the book: None), and
  `canon_memory` (whether the burst reads the canon's memory and a commit keeps a rolling summary);
- the burst: `burst_context` (what the domain poses this epoch: the book's bounded memory and task, a
  CodeRepair task) and `burst_messages` (the prompt each agent answers, given that context);
- review: `review_criteria` (what a reviewer judges), `review_prompt` (how the candidates are presented
  under those criteria; `context` is the epoch's burst context, which a CodeRepair review needs) and
  `review_messages` (the reviewer's framing, with a repair note after a rejected reply), `identity_terms`
  (the words masked from a candidate before review);
- tests: `score_candidates` (a domain whose candidates can be tested scores each one through the sandbox
  runner it is handed; the winner is then the fittest candidate; None: the peers alone decide);
- canon: `canon_entry` (what the winner becomes in the domain's canon: a title and a text) and
  `canon_markdown` (how a canon entry reads in Dagster metadata);
- the deck: `deck_views` (the names of the deck views that show this domain; the deck maps them to pages).

Pure: no I/O, no Dagster; arguments are plain values (`Any` where a domain's own type is meant).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from spica.agents import SpicaAgent
from spica.base import Spica


class SpicaDomain(Spica):
    """A domain the loop can run: a SPICA derivative implementing the Domain protocol above."""

    kind: ClassVar[str] = "domain"
    family: ClassVar[str] = ""  # the folder under dream_pipeline/domains/ that implements it ("book")
    canon_memory: ClassVar[bool] = True  # the burst reads the canon's memory; a commit updates its summary

    @classmethod
    def load(cls, name: str) -> SpicaDomain:
        """The domain instance an experiment names (its manifest)."""
        raise NotImplementedError(f"{cls.__qualname__} does not implement load")

    # ---- manifest and cast -------------------------------------------------------------------

    @property
    def cast_size(self) -> int:
        return len(self.manifest["cast"])

    def initial_cast(self, size: int | None = None) -> list[SpicaAgent]:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement initial_cast")

    def reserve(self) -> list[dict[str, Any]]:
        return [dict(persona) for persona in self.manifest.get("reserve", ())]

    def recruit(self, persona: Mapping[str, Any], replaced: SpicaAgent) -> SpicaAgent:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement recruit")

    # ---- the burst ---------------------------------------------------------------------------

    def posed(self, number: int) -> Any:
        """What epoch `number` poses whatever the canon holds (CodeRepair: its task); None by default. The
        review step hands it to `review_prompt` as its context."""
        return None

    def burst_context(self, memory: Any, budget: int) -> Any:
        """What the burst poses this epoch, from what the fabric remembers of the canon (`memory`), within
        `budget` tokens (the book: its bounded memory and the chapter's task)."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement burst_context")

    def burst_messages(self, agent: SpicaAgent, context: Any) -> list[dict[str, str]]:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement burst_messages")

    # ---- review ------------------------------------------------------------------------------

    def review_criteria(self) -> str:
        """What a reviewer is asked to judge and how to answer: the fixed part of every review prompt."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement review_criteria")

    def review_prompt(self, presentation: Any, candidates: Mapping[str, str],
                      shown: Mapping[str, int] | None = None, context: Any = None) -> str:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement review_prompt")

    def review_messages(self, agent: SpicaAgent, prompt: str, repair: str | None = None) -> list[dict[str, str]]:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement review_messages")

    def identity_terms(self, seated: Sequence[Mapping[str, Any]], used_names: Iterable[str]) -> tuple[str, ...]:
        """Words that would identify an author to a reviewer; none by default."""
        return ()

    # ---- tests -------------------------------------------------------------------------------

    def score_candidates(self, context: Any, candidates: Mapping[str, str], peer_scores: Mapping[str, float],
                         run: Any) -> Mapping[str, Any] | None:
        """Per candidate author, its test result and fitness (attributes `status`, `passed`, `total`,
        `pass_rate`, `fitness`), running code only through `run` (the sandbox); None when the domain has
        no tests (the book), and the tournament's winner stands."""
        return None

    # ---- canon -------------------------------------------------------------------------------

    def canon_entry(self, winner_text: str, number: int) -> tuple[str, str]:
        """The winner as an entry of the canon: (title, text)."""
        return f"{self.name} {number}", winner_text

    def canon_markdown(self, number: int, title: str, author: str, text: str, world: int | None = None) -> str:
        heading = f"## {title}" + (f" (world {world})" if world is not None else "")
        return f"{heading}\n\n*by the {author}*\n\n{text}"

    # ---- the deck ----------------------------------------------------------------------------

    def deck_views(self) -> tuple[str, ...]:
        """The deck views that show this domain, by name (the deck owns the pages)."""
        return ()
