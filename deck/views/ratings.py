"""Ratings over time: Elo and Bradley–Terry per agent over a window of epochs, arrivals and eliminations
marked on the lines."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deck import charts, queries
from deck.views.page import Page, book_view, epoch_window


def body(page: Page) -> None:
    conn, book, latest = page.conn, page.book, page.latest
    c = st.columns([3, 1])
    with c[0]:
        first, last = epoch_window(latest["epoch_number"], "ratings_window", default=100)
    max_agents = int(c[1].number_input("Agents shown", min_value=1, max_value=40, value=12, key="ratings_agents"))
    history = queries.rating_history(conn, book, first, last, max_agents=max_agents)
    events = queries.arrivals_and_eliminations(conn, book, first, last)
    if history.empty:
        st.info("No ratings in these epochs yet: they appear once an epoch's votes are counted.")
        return
    shown, total = history["agent"].nunique(), int(history["agents_in_window"].iloc[0])
    bucket = max(1, -(-(last - first + 1) // 300))
    note = f"; each point averages {bucket} epochs" if bucket > 1 else ""
    st.caption(f"{shown} of {total} agents rated in epochs {first:,}–{last:,} (those still rated at the end and "
               f"the longest-lived first){note}. ▲ arrival, ✕ elimination.")
    marks = event_marks(history, events)
    legend = shown <= 15
    st.altair_chart(charts.rating_lines(history, marks, field="elo", title="Elo", legend=legend), width="stretch")
    bt = history.dropna(subset=["bt"])
    if not bt.empty:
        st.altair_chart(
            charts.rating_lines(bt, event_marks(bt, events, field="bt"), field="bt",
                                title="Bradley–Terry (95 % interval)", band=("bt_lower", "bt_upper"), legend=legend),
            width="stretch",
        )
    st.subheader("Arrivals and eliminations")
    st.dataframe(events.head(50), hide_index=True, width="stretch")


def event_marks(history: pd.DataFrame, events: pd.DataFrame, field: str = "elo") -> pd.DataFrame:
    """Place each arrival and elimination of a plotted agent on its line (its value at or before then)."""
    columns = ["agent", "epoch", "event", "detail", field]
    if events.empty or history.empty:
        return pd.DataFrame(columns=columns)
    plotted = events[events["agent"].isin(set(history["agent"]))].sort_values("epoch")
    if plotted.empty:
        return pd.DataFrame(columns=columns)
    line = history[["agent", "epoch", field]].sort_values("epoch")
    placed = pd.merge_asof(plotted, line, on="epoch", by="agent", direction="nearest")
    return placed.dropna(subset=[field])[columns]


VIEW = book_view("ratings", "Ratings over time", body, empty="no rating history", needs_epoch=True)
