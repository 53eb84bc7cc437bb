"""The Epistemic Deck (Streamlit entry point): `dream deck`, or `python -m streamlit run deck/app.py`.

Reads the state fabric as the read-only `dream_reader` role (DREAM_DECK_DATABASE_URL, or the embedded
server). The sidebar picks a domain instance (the book `space_time`, CodeRepair's `code_repair`, ...: a row of
`domains`, `?domain=<name>`) and one of its views; each view has its own address (`?view=matrix`, ...), and
which views a domain shows is its family's to say (`deck/domains.py` finds the family, `deck/views/__init__.py`
lists its views).
"""

from __future__ import annotations

import pandas as pd
import psycopg
import streamlit as st

from deck import queries
from deck.domains import domain_family
from deck.safe_text import md_escape
from deck.views import View, views_for

st.set_page_config(page_title="Epistemic Deck", page_icon="🂠", layout="wide")
FAMILY_NAMES = {"book": "Book", "code_repair": "CodeRepair"}  # a domain's family as the sidebar names it


def choose_view(where, views: list[View]) -> View:
    """The sidebar's list of `views`, on the view the address names (or the first)."""
    by_slug = {v.slug: v for v in views}
    if st.session_state.get("view") not in by_slug:
        requested = st.query_params.get("view", views[0].slug)
        st.session_state["view"] = requested if requested in by_slug else views[0].slug
    slug = where.radio("View", list(by_slug), format_func=lambda s: by_slug[s].title, key="view")
    st.query_params["view"] = slug
    return by_slug[slug]


def family_name(family: str | None) -> str:
    """A domain family as a reader names it."""
    return FAMILY_NAMES.get(family or "", family or "domain")


def choose_domain(where, domains: pd.DataFrame) -> str:
    """The sidebar's domain picker over the fabric's domain instances (name and family), on the one the address
    names (`?domain=`), else the most recently active; no box when there is only one."""
    names = list(domains["book"])
    if len(names) == 1:
        return names[0]
    families = dict(zip(domains["book"], domains["family"], strict=True))
    if st.session_state.get("domain") not in families:
        requested = st.query_params.get("domain")
        st.session_state["domain"] = requested if requested in families else names[0]
    chosen = where.selectbox("Domain", names, format_func=lambda n: f"{n} · {family_name(families[n])}",
                                  key="domain")
    st.query_params["domain"] = chosen
    return chosen


st.sidebar.title("Epistemic Deck")
picker = st.sidebar.container()  # the domain picker first, then its views (filled once the fabric is read)
navigation = st.sidebar.container()

try:
    url = queries.database_url()
    with queries.connect(url) as conn:
        books = queries.books(conn)
    books["family"] = [domain_family(name, kind) for name, kind in zip(books["book"], books["kind"], strict=True)]
except queries.DeckSetupError as err:
    choose_view(navigation, views_for(None))
    st.error(str(err))
    st.stop()
except psycopg.OperationalError as err:
    choose_view(navigation, views_for(None))
    st.error(
        "The deck cannot reach the state fabric as the read-only role. On the embedded server, `dream deck` "
        "(or `dream db migrate`) creates the database and the role; elsewhere set DREAM_DECK_DATABASE_URL."
    )
    st.caption(f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    st.stop()

book, family = None, None
if not books.empty:
    book = choose_domain(picker, books)
    row = books[books["book"] == book].iloc[0]
    family = row["family"]
    epochs = 0 if pd.isna(row["last_epoch"]) else int(row["last_epoch"])
    picker.caption(f"{md_escape(family_name(family))} **{md_escape(book)}** · {epochs:,} epochs")
st.sidebar.caption("Read-only: the deck connects as `dream_reader`.")

choose_view(navigation, views_for(family)).render(url, book)
