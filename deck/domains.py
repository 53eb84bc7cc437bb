"""Which family of domain (the book, CodeRepair, ...) an instance in the fabric belongs to: that decides the
deck views it gets and how the deck words its canon.

The loop's domains are SPICA domains registered by instance name (`space_time`, `code_repair`); the class
registered under a name says its family (its folder under dream_pipeline/domains/). `domains.kind` is the
SPICA kind stored with the row ("domain" for every loop domain), so it names the family only for an instance
the registry does not know (a fabric written by other code): then the deck takes the stored kind.
"""

from __future__ import annotations

from functools import cache

import spica
from dream_pipeline.domains import register_shipped


@cache
def registered_family(name: str) -> str | None:
    """The family of the domain class registered under `name`, None when no shipped domain registers it."""
    register_shipped()
    return getattr(spica.registered_domains().get(name), "family", "") or None


def domain_family(name: str, kind: str | None) -> str | None:
    """The family of the domain instance `name`, stored with `kind`."""
    return registered_family(name) or kind
