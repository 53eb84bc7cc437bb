"""The Epistemic Deck (Streamlit entry point): `dream deck`, or `python -m streamlit run deck/app.py`.

Reads the state fabric as the read-only `dream_reader` role (DREAM_DECK_DATABASE_URL, or the embedded
server). Each view has its own address: `?view=matrix`, `?view=book`, ...; which views there are is the
chosen domain's to say (`deck/views/__init__.py`).
"""

from __future__ import annotations

import pandas as pd
import psycopg
import streamlit as st

from deck import queries
from deck.safe_text import md_escape
from deck.views import View, views_for

st.set_page_config(page_title="Epistemic Deck", page_icon="🂠", layout="wide")


def choose_view(where, views: list[View]) -> View:
    """The sidebar's list of `views`, on the view the address names (or the first)."""
    by_slug = {v.slug: v for v in views}
    if st.session_state.get("view") not in by_slug:
        requested = st.query_params.get("view", views[0].slug)
        st.session_state["view"] = requested if requested in by_slug else views[0].slug
    slug = where.radio("View", list(by_slug), format_func=lambda s: by_slug[s].title, key="view")
    st.query_params["view"] = slug
    return by_slug[slug]


st.sidebar.title("Epistemic Deck")
navigation = st.sidebar.container()  # above the book: filled once the book, and so its domain's views, is known

try:
    url = queries.database_url()
    with queries.connect(url) as conn:
        books = queries.books(conn)
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

book, kind = None, None
if not books.empty:
    names = list(books["book"])
    book = st.sidebar.selectbox("Book", names, key="book") if len(names) > 1 else names[0]
    row = books[books["book"] == book].iloc[0]
    kind = row["kind"]
    epochs = 0 if pd.isna(row["last_epoch"]) else int(row["last_epoch"])
    st.sidebar.caption(f"Book **{md_escape(book)}** · {epochs:,} epochs")
st.sidebar.caption("Read-only: the deck connects as `dream_reader`.")

choose_view(navigation, views_for(kind)).render(url, book)
