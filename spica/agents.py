"""Persona agents: SPICA derivatives that write drafts and review their peers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from spica.base import Spica


class SpicaAgent(Spica):
    """One persona in the tournament. Its manifest is its persona: name, role, voice, obsessions."""

    kind: ClassVar[str] = "agent"

    @property
    def role(self) -> str:
        return str(self.manifest.get("role", self.name.lower()))

    @property
    def voice(self) -> str:
        return str(self.manifest.get("voice", ""))

    def system_prompt(self) -> str:
        """Who the agent is, for every call it makes; the same text for drafting and reviewing."""
        obsessions = ", ".join(self.manifest.get("obsessions", ()))
        lines = [
            f"You are the {self.name}, one author in a writers' tournament composing a book together.",
            f"Voice: {self.voice}." if self.voice else "",
            f"You keep returning to: {obsessions}." if obsessions else "",
        ]
        return "\n".join(line for line in lines if line)

    def mutate(self, generation_hint: int) -> SpicaAgent:
        """A child persona: same role, a shifted voice, a new name; recorded as a mutation of self."""
        numeral = roman(generation_hint + 1)
        base_name = str(self.manifest.get("base_name", self.name))
        changes: Mapping[str, Any] = {
            "name": f"{base_name} {numeral}"[:50],
            "base_name": base_name,
            "voice": f"{self.voice}; a younger, bolder variation that takes more risks".strip("; "),
        }
        return self.spawn_instance(manifest_changes=changes, origin="mutation")


ROMAN = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
         (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def roman(number: int) -> str:
    """`number` (1–3999) in Roman numerals, subtractive form: 83 is LXXXIII, 49 is XLIX."""
    if not 1 <= number <= 3999:
        raise ValueError(f"Roman numerals run from 1 to 3999, not {number}")
    out = []
    for value, letters in ROMAN:
        count, number = divmod(number, value)
        out.append(letters * count)
    return "".join(out)
