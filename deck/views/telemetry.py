"""Telemetry: per epoch and per agent over a window, epoch durations and the dead time between epochs
(downtime apart), voter flags, the engines as probed, and any epoch that keeps failing."""

from __future__ import annotations

import streamlit as st

from deck import charts, queries
from deck.glossary import glossary_link
from deck.safe_text import md_escape
from deck.views.page import Page, book_view, epoch_window, fmt, readable
from dream_pipeline.epoch.ballot_diagnosis import STALL_AFTER


def body(page: Page) -> None:
    conn, book, latest = page.conn, page.book, page.latest
    summary = queries.timing_summary(conn, book) or {}
    first, last = epoch_window(latest["epoch_number"], "telemetry_window", limit=queries.MAX_WINDOW)
    epochs = queries.epoch_telemetry(conn, book, first, last)
    agents = queries.agent_telemetry(conn, book, first, last)
    flagged = queries.flags(conn, book, first, last)
    engines, changes = queries.engines(conn), queries.mode_changes(conn)
    stalled = queries.stalled_epochs(conn, book, STALL_AFTER)
    for row in stalled.itertuples():
        st.error(f"{md_escape(row.epoch_key)} failed {row.failures} times in a row: {md_escape(row.failure)}",
                 icon="⛔")
    m = st.columns(5)
    m[0].metric("Epochs finished", f"{summary.get('finished') or 0:,}")
    m[1].metric("Mean epoch", f"{fmt(summary.get('mean_duration_s'), '.2f')} s",
                help=f"p95 {fmt(summary.get('p95_duration_s'), '.2f')} s")
    m[2].metric("Mean dead time", f"{fmt(summary.get('mean_dead_s'), '.2f')} s",
                help=f"between one epoch's end and the next one's start while the loop runs; p95 "
                     f"{fmt(summary.get('p95_dead_s'), '.2f')} s. {glossary_link('dead time')}")
    m[3].metric("Total dead time", f"{fmt(summary.get('total_dead_s'), ',.0f')} s")
    m[4].metric("Downtime", f"{fmt(summary.get('total_downtime_s'), ',.0f')} s",
                help=f"the loop was stopped ({summary.get('restarts') or 0:,} restarts): not counted as dead "
                     f"time. {glossary_link('downtime')}")
    if not epochs.empty:
        st.subheader("Per epoch")
        st.altair_chart(charts.epoch_timings(epochs), width="stretch")
        # the first epoch has no gap before it: "—", where a grid would print "None"
        shown = readable(epochs, {"dead_time_s": ".2f", "downtime_s": ".0f"})
        st.dataframe(shown, hide_index=True, width="stretch", column_config=EPOCH_TELEMETRY_COLUMNS)
    st.subheader("Per agent")
    st.caption(f"Epochs {first:,}–{last:,}: drafts, tokens, latency, truncations, abstentions, voter flags "
               "and engine calls (including retries and failures).")
    st.dataframe(agents, hide_index=True, width="stretch", column_config=AGENT_TELEMETRY_COLUMNS)
    st.subheader("Voter flags")
    if flagged.empty:
        st.caption("No outlier voter or possible clique flagged in these epochs.")
    else:
        st.dataframe(flagged, hide_index=True, width="stretch", column_config={
            "epoch": "Epoch", "kind": "Flag", "voter": "Voter", "partner": "Partner",
            "strength": st.column_config.NumberColumn("Strength", format="%.2f")})
    st.subheader("Engine")
    st.caption("What each engine was probed to do: how ballots ask for JSON, its context window, embeddings "
               "(without them memory goes by full text), the requests it really runs at once.")
    st.dataframe(engines, hide_index=True, width="stretch")
    if not changes.empty:
        st.caption("Ballot modes that started failing and were stepped down:")
        st.dataframe(changes, hide_index=True, width="stretch")


def _seconds(label: str, decimals: int = 2, help: str | None = None):
    return st.column_config.NumberColumn(label, format=f"%.{decimals}f", help=help)


def _count(label: str, help: str | None = None):
    return st.column_config.NumberColumn(label, format="%d", help=help)


# the telemetry queries' columns under the names a reader expects, rounded to what matters
EPOCH_TELEMETRY_COLUMNS = {
    "epoch": _count("Epoch"), "status": "Status",
    "duration_s": _seconds("Duration (s)", 1),
    "dead_time_s": st.column_config.TextColumn("Dead time (s)", help=glossary_link("dead time")),
    "downtime_s": st.column_config.TextColumn("Downtime (s)", help=glossary_link("downtime")),
    "drafts": _count("Drafts"), "forfeits": _count("Forfeits", glossary_link("forfeit")),
    "completion_tokens": _count("Tokens drafted"),
    "mean_latency_s": _seconds("Mean draft latency (s)"), "max_latency_s": _seconds("Slowest draft (s)"),
    "truncations": _count("Truncated drafts", glossary_link("truncated")),
    "abstentions": _count("Abstentions", glossary_link("abstention")), "flags": _count("Voter flags"),
    "calls": _count("Engine calls"), "call_tokens": _count("Engine tokens"), "call_errors": _count("Engine errors"),
    "vote_mode": "Ballots as", "memory_mode": "Memory",
}
AGENT_TELEMETRY_COLUMNS = {
    "agent": "Agent", "drafts": _count("Drafts"), "completion_tokens": _count("Tokens drafted"),
    "mean_latency_s": _seconds("Mean draft latency (s)"), "max_latency_s": _seconds("Slowest draft (s)"),
    "truncations": _count("Truncated drafts", glossary_link("truncated")),
    "abstentions": _count("Abstentions", glossary_link("abstention")),
    "outlier_flags": _count("Outlier flags"), "clique_flags": _count("Clique flags"),
    "calls": _count("Engine calls"), "call_tokens": _count("Engine tokens"),
    "mean_call_latency_s": _seconds("Mean call latency (s)"), "call_errors": _count("Engine errors"),
}


VIEW = book_view("telemetry", "Telemetry", body, empty="no telemetry yet", needs_epoch=True)
