"""Similar drafts: pick a draft, see its nearest drafts and chapters by cosine similarity of their
embeddings (pgvector), the column `dream search` shows under the same name."""

from __future__ import annotations

import streamlit as st

from deck import queries
from deck.safe_text import md_escape
from deck.views.page import Page, book_view


def body(page: Page) -> None:
    conn, book, latest = page.conn, page.book, page.latest
    number = int(st.number_input("Epoch", min_value=1, max_value=latest["epoch_number"],
                                 value=latest["epoch_number"], step=1, key="similar_epoch"))
    drafts = queries.epoch_drafts(conn, book, number)
    if drafts.empty:
        st.info(f"Epoch {number} has no draft yet.")
        return
    labels = {r.draft_id: r.agent + (" (the canon)" if r.canon else "") for r in drafts.itertuples()}
    chosen = st.selectbox("Draft", list(labels), format_func=labels.get, key=f"similar_draft_{number}")
    picked = queries.draft(conn, chosen)
    nearest = queries.similar_drafts(conn, chosen)
    chapters = queries.similar_chapters(conn, chosen)
    with st.expander(f"The draft by {md_escape(picked['agent'])}, epoch {picked['epoch_number']:,}"):
        st.text(picked["text"])
    if picked["dims"] is None:
        st.warning("This draft has no embedding (the engine returned none), so it has no neighbours.")
        return
    st.caption(f"Cosine similarity of {picked['dims']}-dimensional embeddings (1 − pgvector's cosine distance "
               "`<=>`: 1 is the same direction, 0 unrelated), the column `dream search` shows under the same name; "
               "drafts embedded at another size or without an embedding are left out.")
    st.subheader("Nearest drafts")
    if nearest.empty:
        st.caption("No other draft has a comparable embedding yet.")
    else:
        st.dataframe(_as_similarity(nearest.drop(columns=["draft_id"])), hide_index=True, width="stretch",
                     column_config=SIMILARITY_COLUMN)
    st.subheader("Nearest chapters of the canon")
    if chapters.empty:
        st.caption("No chapter has a comparable embedding yet.")
    else:
        st.dataframe(_as_similarity(chapters), hide_index=True, width="stretch", column_config=SIMILARITY_COLUMN)


SIMILARITY_COLUMN = {"cosine similarity": st.column_config.NumberColumn(format="%.3f")}


def _as_similarity(frame):
    """pgvector's cosine distance as the cosine similarity `dream search` prints, under the same name."""
    return frame.assign(distance=1 - frame["distance"]).rename(columns={"distance": "cosine similarity"})


VIEW = book_view("similar", "Similar drafts", body, empty="no draft yet", needs_epoch=True)
