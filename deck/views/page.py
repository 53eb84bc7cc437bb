"""What every view of the deck shares: its heading, what it says on an empty fabric, its read-only
connection, and a few ways of showing numbers.

A view module writes only what it shows (a `body(page)`); `book_view` wraps it in the prologue each
view would otherwise repeat: the heading, "the state fabric is empty" while no book exists, one
read-only connection for the render with the book's latest epoch read, "no epoch has run yet" for a
view that needs one, and, for a live view, all of it re-read every `REFRESH_SECONDS` in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
import streamlit as st

from deck import queries
from deck.domains import domain_family

REFRESH_SECONDS = 3
DEFAULT_WINDOW = 50
START_HINT = "Start the loop with `dream run` (or `make run`); the deck follows it as epochs arrive."


@dataclass(frozen=True)
class View:
    """One entry of the deck's sidebar, with its own address (`?view=<slug>`)."""

    slug: str
    title: str
    render: Callable[[str, str | None], None]  # (database url, book or None when the fabric is empty)


@dataclass(frozen=True)
class Page:
    """What a view's body reads from: an open read-only connection, the book (any domain instance) and its
    latest epoch (None before the first), and the domain's family ("book", "code_repair": `deck.domains`)."""

    conn: psycopg.Connection
    book: str
    latest: dict[str, Any] | None
    family: str | None = None

    def nothing_yet(self, what: str) -> None:
        """Say that the book has `what` ("no chapter yet") and how to start the loop."""
        st.info(f"{self.book!r} has {what}. {START_HINT}")


def book_view(slug: str, title: str, body: Callable[[Page], None], *, empty: str, heading: str | None = None,
              needs_epoch: bool = False, live: bool = False) -> View:
    """A view of one book, under `heading` (its sidebar `title` unless given). `empty`: what an empty
    fabric leaves it without ("no ballot to show"); `needs_epoch`: before the book's first epoch it says
    so instead of calling `body`; `live`: its body is re-read and redrawn every `REFRESH_SECONDS` while
    the page is open."""

    def read(url: str, book: str) -> None:
        with queries.connect(url) as conn:
            latest = queries.latest_epoch(conn, book)
            if needs_epoch and latest is None:
                st.info(f"No epoch of {book!r} has run yet. {START_HINT}")
                return
            body(Page(conn, book, latest, domain_family(book, queries.domain_kind(conn, book))))

    refreshed = st.fragment(read, run_every=REFRESH_SECONDS) if live else read

    def render(url: str, book: str | None) -> None:
        st.header(heading or title)
        if book is None:
            st.info(f"The state fabric is empty: no book has been started yet, so there is {empty}. {START_HINT}")
            return
        refreshed(url, book)

    return View(slug, title, render)


def fmt(value: Any, spec: str = ".1f", empty: str = "—") -> str:
    """`value` formatted by `spec`, or `empty` when it is missing (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return empty
    return format(value, spec)


def readable(frame: pd.DataFrame, formats: dict[str, str], missing: str = "—") -> pd.DataFrame:
    """`frame` with the `formats` columns as text: numbers formatted, a missing value as `missing`, where a
    data grid would print "None"."""
    out = frame.copy()
    for column, spec in formats.items():
        out[column] = [missing if pd.isna(v) else format(float(v), spec) for v in frame[column]]
    return out


def bounded_state(key: str, maximum: int, default: int) -> None:
    """Give the number box under `key` (1..`maximum`) its value in the session state, where the box keeps
    it: `default` the first time, and again when a kept value is out of range (another domain's)."""
    if key in st.session_state and not 1 <= st.session_state[key] <= maximum:
        del st.session_state[key]
    st.session_state.setdefault(key, default)


def pick_page(total: int, per_page: int, label: str, key: str) -> int:
    """A page-number box over `total` items, `per_page` to a page; `label` says the number of pages as
    `{pages}`."""
    pages = -(-total // per_page)
    return int(st.number_input(label.format(pages=f"{pages:,}"), min_value=1, max_value=pages, value=1, step=1,
                               key=key))


def epoch_window(last_epoch: int, key: str, default: int = DEFAULT_WINDOW,
                 limit: int | None = None) -> tuple[int, int]:
    """A (first, last) epoch slider over the whole book, defaulting to the latest `default` epochs."""
    if last_epoch <= 1:
        return 1, 1
    first, last = st.slider(
        "Epochs", min_value=1, max_value=last_epoch, value=(max(1, last_epoch - default + 1), last_epoch),
        key=key, help=None if limit is None else f"At most {limit:,} epochs are read at once (the latest ones).",
    )
    if limit is not None and last - first + 1 > limit:
        first, last = queries.clamp_window(first, last, limit)
        st.caption(f"Showing the latest {limit:,} epochs of the selection: {first:,}–{last:,}.")
    return first, last
