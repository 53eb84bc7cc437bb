"""The book domain: a SPICA derivative whose manifest is the premise, the cast and the reserve pool."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, ClassVar

from spica.agents import SpicaAgent
from spica.base import Lineage, Spica
from spica.registry import register_domain


@register_domain("far_shore")
@register_domain("space_time")
class SpicaBook(Spica):
    """A book written by a tournament of persona agents, one chapter per epoch."""

    kind: ClassVar[str] = "domain"

    @classmethod
    def load(cls, name: str = "space_time") -> SpicaBook:
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

    def initial_cast(self) -> list[SpicaAgent]:
        return [self._agent(persona, "cast") for persona in self.manifest["cast"]]

    def reserve(self) -> list[dict[str, Any]]:
        return [dict(persona) for persona in self.manifest.get("reserve", ())]

    def recruit(self, persona: dict[str, Any], replaced: SpicaAgent) -> SpicaAgent:
        """A reserve persona joining in place of `replaced` (its lineage names the agent it replaces)."""
        agent = self._agent(persona, "reserve")
        agent.lineage = Lineage(parent_id=None, generation=replaced.lineage.generation + 1, origin="reserve")
        return agent

    def _agent(self, persona: dict[str, Any], origin: str) -> SpicaAgent:
        return SpicaAgent(dict(persona), lineage=Lineage(origin=origin))
