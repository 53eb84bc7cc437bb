"""A book as a SPICA domain: the manifest (premise, cast, reserve pool) and how its cast is seated.

The loop runs the book through `dream_pipeline/domains/book/domain.py` (`BookDomain`), which adds the rest
of the Domain protocol (prompts, review, canon, deck views) and registers the shipped books; this part is
pure and shared with the benchmarks."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, ClassVar

from spica.agents import SpicaAgent
from spica.base import Lineage
from spica.domain import SpicaDomain


class SpicaBook(SpicaDomain):
    """A book written by a tournament of persona agents, one chapter per epoch."""

    family: ClassVar[str] = "book"

    @classmethod
    def load(cls, name: str) -> SpicaBook:
        """The shipped manifest `spica/personas/<name>.json`."""
        try:
            text = resources.files("spica.personas").joinpath(f"{name}.json").read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ValueError(f"no book manifest named {name!r} in spica/personas/") from exc
        return cls(json.loads(text))

    @property
    def title(self) -> str:
        return str(self.manifest.get("title", self.name))

    @property
    def premise(self) -> str:
        return str(self.manifest.get("premise", ""))

    @property
    def cast_size(self) -> int:
        """How many agents the book seats: the manifest's `cast_size`, else the size of its cast."""
        return int(self.manifest.get("cast_size", len(self.manifest["cast"])))

    def initial_cast(self, size: int | None = None) -> list[SpicaAgent]:
        """The agents seated when the book starts, `size` of them (default `cast_size`).

        The cast first; past it, reserve personas in manifest order; past those, mutations of the
        seated personas in turn (`Physicist II`, `Financier II`, ..., then `III`), recorded as children
        of their persona. All are cast members (origin 'cast': no newcomer's grace in epoch 1). The
        reserve personas taken here are no longer in the pool the Reaper draws replacements from."""
        size = self.cast_size if size is None else size
        if size < 2:
            raise ValueError(f"a cast needs at least 2 agents, got {size}")
        personas = [*self.manifest["cast"], *self.manifest.get("reserve", ())][:size]
        seated = [self._agent(persona, "cast") for persona in personas]
        bases = list(seated)
        round_ = 1
        while len(seated) < size:
            for parent in bases[: size - len(seated)]:
                child = parent.mutate(round_)
                child.lineage = Lineage(parent_id=parent.instance_id, generation=round_, origin="cast")
                seated.append(child)
            round_ += 1
        return seated

    def reserve(self) -> list[dict[str, Any]]:
        return [dict(persona) for persona in self.manifest.get("reserve", ())]

    def recruit(self, persona: dict[str, Any], replaced: SpicaAgent) -> SpicaAgent:
        """A reserve persona joining in place of `replaced` (its lineage names the agent it replaces)."""
        agent = self._agent(persona, "reserve")
        agent.lineage = Lineage(parent_id=None, generation=replaced.lineage.generation + 1, origin="reserve")
        return agent

    def _agent(self, persona: dict[str, Any], origin: str) -> SpicaAgent:
        return SpicaAgent(dict(persona), lineage=Lineage(origin=origin))
