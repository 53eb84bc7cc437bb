"""Lineage: who replaced whom and which mutation descends from which parent, a page of arrivals at a time,
the living cast's share per root persona, and one agent's ancestry."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deck import queries
from deck.glossary import glossary_link
from deck.safe_text import dot_quote, md_escape
from deck.views.page import Page, book_view, pick_page

AGENTS_PER_PAGE = 25


def body(page: Page) -> None:
    conn, book = page.conn, page.book
    summary = queries.lineage_summary(conn, book)  # per origin: its agents add up to the book's
    total = int(summary["agents"].sum()) if not summary.empty else 0
    if total == 0:
        return page.nothing_yet("no agent yet")
    shares = queries.lineage_shares(conn, book)
    c = st.columns(len(summary) + 1)
    c[0].metric("Agents", f"{total:,}")
    for col, r in zip(c[1:], summary.itertuples(), strict=True):
        col.metric(r.origin, f"{r.agents:,}", help=f"{r.alive} alive; deepest generation {r.max_generation}")
    if not shares.empty:
        top = shares.iloc[0]
        st.metric("Largest lineage in the living cast", f"{top['share']:.0%}",
                  help=f"{top['lineage']}: {top['alive']} of {int(shares['alive'].sum())} living agents descend "
                       "from it. The Reaper keeps it low (docs/tournament_rules.md, section 14).")
        st.caption("Living cast by lineage: " + ", ".join(
            f"{md_escape(r.lineage)} {r.share:.0%}" for r in shares.itertuples()))
    number = pick_page(total, AGENTS_PER_PAGE, "Page of arrivals (of {pages}; the latest first)", "lineage_page")
    frame = queries.lineage(conn, book, (number - 1) * AGENTS_PER_PAGE, AGENTS_PER_PAGE, total=total)
    st.caption("Solid arrow: replaced (the newcomer took the eliminated agent's seat); dashed: mutation of "
               "a parent persona. Grey: retired.")
    st.graphviz_chart(lineage_dot(frame))
    shown = frame.assign(retired_epoch=[("—" if pd.isna(v) else f"{int(v):,}") for v in frame["retired_epoch"]],
                         replaced=frame["replaced"].fillna("—"), parent=frame["parent"].fillna("—"))
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "agent": "Agent", "origin": st.column_config.TextColumn("Origin", help=glossary_link("mutation")),
        "generation": st.column_config.NumberColumn("Generation", format="%d"),
        "joined_epoch": st.column_config.NumberColumn("Joined in epoch", format="%d"),
        "retired_epoch": "Retired in epoch", "alive": "Alive", "replaced": "Replaced",
        "parent": "Parent", "persona": "Persona"})
    st.subheader("One agent's ancestry")
    prefix = st.text_input("Filter names", key="lineage_filter", placeholder="e.g. Physicist")
    names = queries.agent_names(conn, book, prefix)
    if not names:
        st.caption("No agent matches.")
        return
    chosen = st.selectbox("Agent", names, key="lineage_agent")
    edges = queries.ancestry(conn, book, chosen)
    if edges.empty:
        st.caption(f"{md_escape(chosen)} was in the original cast and has no successor yet.")
    else:
        st.graphviz_chart(ancestry_dot(edges))


def _node(name: str, alive: bool, origin: str) -> str:
    style = {"cast": "box", "reserve": "ellipse", "mutation": "hexagon"}.get(origin, "ellipse")
    fill = "#dbe9f6" if alive else "#eeeeee"
    return f"{dot_quote(name)} [shape={style}, style=filled, fillcolor=\"{fill}\"];"


# top to bottom: a page of arrivals is a long chain, which laid out left to right is scaled down to the page's
# width until its labels cannot be read (tests/test_deck_browser.py checks their rendered size)
LINEAGE_GRAPH = ["rankdir=TB;", "nodesep=0.3; ranksep=0.35;", 'node [fontname="Helvetica", fontsize=16];',
                 "edge [arrowsize=0.7];"]


def lineage_dot(frame: pd.DataFrame) -> str:
    """Graphviz source of a page of arrivals: replaced → newcomer, parent → mutation."""
    lines = ["digraph lineage {", *LINEAGE_GRAPH]
    for r in frame.itertuples():
        lines.append(_node(r.agent, bool(r.alive), r.origin))
        if isinstance(r.replaced, str):
            lines.append(f"{dot_quote(r.replaced)} -> {dot_quote(r.agent)} [label=\"epoch {r.joined_epoch - 1}\"];")
        if isinstance(r.parent, str):
            lines.append(f"{dot_quote(r.parent)} -> {dot_quote(r.agent)} [style=dashed];")
    lines.append("}")
    return "\n".join(lines)


def ancestry_dot(edges: pd.DataFrame) -> str:
    lines = ["digraph ancestry {", *LINEAGE_GRAPH]
    for r in edges.itertuples():
        lines.append(_node(r.source, bool(r.source_alive), r.source_origin))
        lines.append(_node(r.agent, bool(r.agent_alive), r.agent_origin))
        style = "dashed" if r.kind == "parent" else "solid"
        lines.append(f"{dot_quote(r.source)} -> {dot_quote(r.agent)} [style={style}];")
    lines.append("}")
    return "\n".join(lines)


VIEW = book_view("lineage", "Lineage", body, empty="no agent yet")
