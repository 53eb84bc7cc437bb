"""SPICA: the template every agent and domain derives from (state, telemetry, manifest, lineage).

Pure Python: persistence is the state fabric's job, so this package can be used anywhere.
"""

from spica.agents import SpicaAgent
from spica.base import Lineage, Spica, TelemetryEvent
from spica.book import SpicaBook
from spica.domain import SpicaDomain
from spica.registry import load_domain, register_domain, registered_domains

__all__ = [
    "Lineage",
    "Spica",
    "SpicaAgent",
    "SpicaBook",
    "SpicaDomain",
    "TelemetryEvent",
    "load_domain",
    "register_domain",
    "registered_domains",
]
