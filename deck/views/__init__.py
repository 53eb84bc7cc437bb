"""The deck's views, one module each, and the one place that says which views a domain shows.

Each view module ends with `VIEW` (a `page.View`: its address `?view=<slug>`, its sidebar title and its
render); `page.book_view` gives a view of a book the prologue they all share. A domain names its views by
module name, in sidebar order: `DOMAIN_VIEWS` maps a domain family (`deck.domains.domain_family`: the
folder under dream_pipeline/domains/) to those names, the same names its domain class gives in `deck_views()`. CodeRepair (kind "code_repair") adds its
own two, `repair_task` and `calibration`, to the views it shares with the book.

Every view reads what it shows through `deck.queries` and nothing else, on a read-only connection, says so
plainly when the fabric has nothing for it yet, and shows agent-written text only through `st.text`, data
frames, chart tooltips or `md_escape`d Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module

from deck.views.page import View

BOOK_VIEWS = ("matrix", "chopping_block", "ratings", "book", "lineage", "telemetry", "similar", "glossary")
CODE_REPAIR_VIEWS = ("repair_task", "matrix", "calibration", "chopping_block", "ratings", "lineage", "telemetry",
                     "glossary")
DOMAIN_VIEWS: dict[str, Sequence[str]] = {"book": BOOK_VIEWS, "code_repair": CODE_REPAIR_VIEWS}
DEFAULT_KIND = "book"  # the views shown before the fabric is read, and for a family without views of its own


def views(names: Sequence[str]) -> list[View]:
    """The views of the modules `deck.views.<name>`, in that order."""
    return [import_module(f"{__name__}.{name}").VIEW for name in names]


def views_for(kind: str | None) -> list[View]:
    """The views a domain of family `kind` shows (the book's for one the deck has no views for yet)."""
    return views(DOMAIN_VIEWS.get(kind or DEFAULT_KIND, DOMAIN_VIEWS[DEFAULT_KIND]))


VIEWS = views_for(DEFAULT_KIND)
