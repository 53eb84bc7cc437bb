"""The CodeRepair domain as a SPICA derivative: its manifest (the cast and the reserve pool of engineers).

Not registered in the SPICA registry yet: the Domain protocol and its registration come with the
domain seam (issue 14); until then the benchmark builds the cast from here directly.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, ClassVar

from spica.agents import SpicaAgent
from spica.base import Lineage, Spica


class SpicaCodeRepair(Spica):
    """Candidate fixes by a cast of engineer personas, judged by peers and by hidden tests."""

    kind: ClassVar[str] = "domain"

    @classmethod
    def load(cls) -> SpicaCodeRepair:
        text = resources.files("dream_pipeline.domains.code_repair").joinpath("manifest.json").read_text("utf-8")
        return cls(json.loads(text))

    def initial_cast(self) -> list[SpicaAgent]:
        return [SpicaAgent(dict(p), lineage=Lineage(origin="cast")) for p in self.manifest["cast"]]

    def reserve(self) -> list[dict[str, Any]]:
        return [dict(p) for p in self.manifest.get("reserve", ())]
