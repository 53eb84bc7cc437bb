"""The deck's views: each reads what it shows through `deck.queries` and nothing else.

Every view opens its own read-only connection for the duration of one render, says so plainly when
the fabric has nothing for it yet, and shows agent-written text only through `st.text`, data frames,
chart tooltips or `md_escape`d Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from deck import charts, queries
from deck.glossary import glossary, glossary_link
from deck.safe_text import dot_quote, md_escape
from dream_pipeline.ballot_diagnosis import STALL_AFTER
from dream_pipeline.prompts import chapter_body
from dream_pipeline.tournament.elimination import pick_eliminated
from dream_pipeline.tournament.review_design import MAX_REVIEWS_PER_VOTER
from dream_pipeline.tournament.selection import describe_margin

REFRESH_SECONDS = 3
CHAPTERS_PER_PAGE = 5
AGENTS_PER_PAGE = 25
DEFAULT_WINDOW = 50
START_HINT = "Start the loop with `dream run` (or `make run`); the deck follows it as epochs arrive."


@dataclass(frozen=True)
class View:
    slug: str
    title: str
    render: Callable[[str, str | None], None]  # (database url, book or None when the fabric is empty)


def _no_book(what: str) -> None:
    st.info(f"The state fabric is empty: no book has been started yet, so there is {what}. {START_HINT}")


def _fmt(value: Any, spec: str = ".1f", empty: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return empty
    return format(value, spec)


def _epoch_window(last_epoch: int, key: str, default: int = DEFAULT_WINDOW,
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


# ---- the voting matrix, live --------------------------------------------------------------------


def voting_matrix(url: str, book: str | None) -> None:
    st.header("The voting matrix, live")
    if book is None:
        _no_book("no ballot to show")
        return
    _live_matrix(url, book)


@st.fragment(run_every=REFRESH_SECONDS)
def _live_matrix(url: str, book: str) -> None:
    """The controls and the matrix, refreshed together: while it follows the live epoch, the (disabled)
    Epoch box shows the live epoch's number."""
    controls = st.columns([1, 1, 2], vertical_alignment="bottom")
    follow = controls[0].toggle("Follow the live epoch", value=True, key="matrix_follow")
    with queries.connect(url) as conn:
        live = queries.latest_epoch(conn, book)
        if follow and live is not None:
            st.session_state["matrix_epoch"] = int(live["epoch_number"])
        st.session_state.setdefault("matrix_epoch", 1)  # the box's value lives in the session state only
        number = controls[1].number_input("Epoch", min_value=1, step=1, key="matrix_epoch", disabled=follow)
        controls[2].caption(f"Refreshes every {REFRESH_SECONDS} s while the page is open. Hover a cell for the "
                            "score and the rationale.")
        epoch = live if follow else queries.epoch(conn, book, int(number))
        if epoch is None:
            if follow:
                st.info(f"No epoch of {book!r} has started yet. {START_HINT}")
            else:
                st.warning(f"Epoch {number} of {book!r} has not started.")
            return
        cells = queries.vote_cells(conn, epoch["epoch_id"])
        roster = queries.roster(conn, epoch["epoch_id"])
        weights = queries.ballot_weights(conn, epoch["epoch_id"])
    committed = epoch["status"] == "committed"
    drafted = int(roster["drafted"].sum()) if not roster.empty else 0
    abstained = roster.dropna(subset=["abstention"]) if not roster.empty else roster
    if not roster.empty and roster["assigned"].sum():  # the review design, written before the ballots
        expected = int(roster.loc[roster["abstention"].isna(), "assigned"].sum())
    else:  # before the votes: at most the full load of the bounded review
        expected = (drafted - len(abstained)) * min(max(drafted - 1, 0), MAX_REVIEWS_PER_VOTER)

    m = st.columns(4)
    m[0].metric("Epoch", f"{epoch['epoch_number']:,}", help=epoch["epoch_key"])
    m[1].metric("Status", epoch["status"], help=glossary_link("collapse" if epoch["status"] == "collapsed"
                                                             else "committed"))
    m[2].metric("Votes in", f"{len(cells)} / {max(expected, len(cells))}")
    m[3].metric("Abstentions", len(abstained), help=glossary_link("abstention"))
    if committed:
        separated = {True: "the bottom was separated", False: "within the noise", None: "separation not recorded"}
        loser = f"{md_escape(epoch['loser'])} eliminated ({separated[epoch['bottom_separated']]})" \
            if epoch["loser"] else "no one eliminated (everyone in grace)"
        st.markdown(f"Chapter won by **{md_escape(epoch['winner'])}**; {loser}.")
    else:
        st.caption("The epoch is not committed yet: each voter's columns are the drafts in the order it read "
                   "them, under the masks it saw. The authors are revealed when the epoch commits.")

    voters = list(roster["agent"]) if not roster.empty else sorted(cells["voter"].unique())
    if cells.empty:
        st.info("No ballot has arrived for this epoch yet: the matrix fills in as the votes are written.")
        return
    cells = cells.copy()
    if committed:
        cells["column"] = cells["target"]
        columns = voters
    else:
        cells["column"] = [f"read #{p + 1}" for p in cells["position"]]
        columns = [f"read #{i + 1}" for i in range(int(cells["position"].max()) + 1)]
    st.altair_chart(charts.vote_heatmap(cells, voters, columns, committed=committed), width="stretch")

    seen = cells.pivot(index="voter", columns="position", values="masked_label")
    if committed:
        targets = cells.pivot(index="voter", columns="position", values="target")
        seen = seen.combine(targets, lambda a, b: a.astype(str) + " → " + b.astype(str))
    seen.columns = [f"read #{p + 1}" for p in seen.columns]
    st.subheader("The masks each voter saw" + (" and who was behind them" if committed else ""))
    st.dataframe(seen, width="stretch")
    if not weights.empty:
        st.subheader("Ballot weights in the elimination")
        st.caption("A flagged clique member's ballots weigh 0, an outlier's 1/ratio² (its disagreement over the "
                   "crowd's median); a significant position effect (points, by 0-based position read) is "
                   "subtracted from that voter's scores. docs/tournament_rules.md, section 13.")
        st.dataframe(weights, hide_index=True, width="stretch")
    if not abstained.empty:
        st.caption("Abstentions (ballots that never parsed): " +
                   ", ".join(f"{md_escape(r.agent)} ({md_escape(r.abstention)})" for r in abstained.itertuples()))


# ---- on the chopping block ----------------------------------------------------------------------


def chopping_block(url: str, book: str | None) -> None:
    st.header("On the chopping block")
    if book is None:
        _no_book("no standing yet")
        return
    with queries.connect(url) as conn:
        latest = queries.latest_epoch(conn, book)
        rated = queries.latest_rated_epoch(conn, book)
        frame = queries.standings(conn, book, rated["epoch_id"] if rated else None)
        eliminations = queries.recent_eliminations(conn, book)
    current = queries.current_epoch_number(latest)
    if frame.empty:
        st.info(f"{book!r} has no living agent yet. {START_HINT}")
        return
    frame = classify_standings(frame, current)
    bottom = frame.loc[frame["status"] == "at the bottom", "agent"]
    m = st.columns([1, 1, 2, 1])
    m[0].metric("Epoch being played", f"{current:,}")
    m[1].metric("Ratings after epoch", f"{rated['epoch_number']:,}" if rated else "—")
    m[2].metric("At the bottom", bottom.iloc[0] if not bottom.empty else "—")
    m[3].metric("Bottom separated", _separation_now(frame),
                help="Whether the bottom agent's interval lies below every other candidate's lower bound. "
                     + glossary_link("separated"))
    if rated is None:
        st.info("No epoch has been rated yet: the standings appear after the first epoch's votes are counted.")
    st.caption("Bars: Bradley–Terry 95 % bootstrap interval over the recent window; dot: its rating; "
               "diamond: Elo (shown for continuity). The lowest *elimination score* outside grace is eliminated: "
               "the mean adjusted score over the last 10 epochs, shrunk toward the roster's mean by how little is "
               "known (empirical Bayes), ballots weighted by voter reliability; *separated* means the bottom "
               "agent's interval lies below everyone else's. Newcomers are safe in their first epoch (grace).")
    plotted = frame.dropna(subset=["bt_rating"])
    if not plotted.empty:
        st.altair_chart(charts.standings_intervals(plotted), width="stretch")
    table = frame[["agent", "status", "elimination_score", "window_mean", "window_epochs", "elo", "bt_rating",
                   "bt_lower", "bt_upper", "epoch_score", "epochs", "chapters", "lineage", "origin", "joined_epoch"]]
    # a newcomer has no rating yet: its cells say so, where a grid would print "None"
    table = readable(table, {"elimination_score": ".2f", "window_mean": ".2f", "elo": ".1f", "bt_rating": ".1f",
                             "bt_lower": ".1f", "bt_upper": ".1f", "epoch_score": ".2f"}, missing="not rated yet")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "agent": "Agent", "status": st.column_config.TextColumn("Status", help=glossary_link("grace")),
        "elimination_score": st.column_config.TextColumn(
            "Elimination score", help="Shrunk mean adjusted score over the window: the lowest is eliminated"),
        "window_mean": "Window mean", "window_epochs": "Epochs in window",
        "elo": "Elo", "bt_rating": "Bradley–Terry", "bt_lower": "BT lower (95 %)", "bt_upper": "BT upper (95 %)",
        "epoch_score": "Last epoch score", "epochs": "Epochs", "chapters": "Chapters", "lineage": "Lineage",
        "origin": "Origin", "joined_epoch": st.column_config.NumberColumn("Joined in epoch", format="%d"),
    })
    st.subheader("Recent eliminations")
    if eliminations.empty:
        st.caption("No one has been eliminated yet.")
    else:
        eliminations = eliminations.assign(bottom_separated=eliminations["bottom_separated"].map(
            {True: "separated", False: "within the noise"}).fillna("not recorded"))
        st.dataframe(eliminations.fillna("—"), hide_index=True, width="stretch", column_config={
            "epoch": "Epoch", "eliminated": "Eliminated", "replaced_by": "Replaced by",
            "replacement_origin": "Replacement's origin",
            "bottom_separated": st.column_config.TextColumn("Bottom", help=glossary_link("separated"))})


def readable(frame: pd.DataFrame, formats: dict[str, str], missing: str = "—") -> pd.DataFrame:
    """`frame` with the `formats` columns as text: numbers formatted, a missing value as `missing`."""
    out = frame.copy()
    for column, spec in formats.items():
        out[column] = [missing if pd.isna(v) else format(float(v), spec) for v in frame[column]]
    return out


def classify_standings(frame: pd.DataFrame, current_epoch: int) -> pd.DataFrame:
    """Add `status`: grace (a newcomer in its first epoch), at the bottom (whom the pipeline's own
    elimination rule, `pick_eliminated`, picks on the stored elimination scores), not rated yet, or safe."""
    frame = frame.copy()
    grace = (frame["origin"] != "cast") & (frame["joined_epoch"] == current_epoch)
    status = pd.Series("safe", index=frame.index)
    status[frame["elimination_score"].isna()] = "not rated yet"
    status[grace] = "grace"
    rated = frame[frame["elimination_score"].notna()]
    bottom = pick_eliminated(
        dict(zip(rated["agent"], rated["elimination_score"], strict=True)), list(rated["agent"]),
        list(frame.loc[grace, "agent"]), dict(zip(rated["agent"], rated["epoch_score"], strict=True)),
    )
    if bottom is not None:
        status[frame.index[frame["agent"] == bottom][0]] = "at the bottom"
    frame["status"] = status
    return frame


def _separation_now(frame: pd.DataFrame) -> str:
    bottom = frame[frame["status"] == "at the bottom"]
    others = frame[(frame["status"] == "safe") & frame["bt_lower"].notna()]
    if bottom.empty or others.empty or pd.isna(bottom["bt_upper"].iloc[0]):
        return "—"
    return "yes" if bottom["bt_upper"].iloc[0] < others["bt_lower"].min() else "no"


# ---- ratings over time --------------------------------------------------------------------------


def ratings_over_time(url: str, book: str | None) -> None:
    st.header("Ratings over time")
    if book is None:
        _no_book("no rating history")
        return
    with queries.connect(url) as conn:
        latest = queries.latest_epoch(conn, book)
        if latest is None:
            st.info(f"No epoch of {book!r} has run yet. {START_HINT}")
            return
        c = st.columns([3, 1])
        with c[0]:
            first, last = _epoch_window(latest["epoch_number"], "ratings_window", default=100)
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


# ---- the book and the multiverse ----------------------------------------------------------------


def the_book(url: str, book: str | None) -> None:
    st.header("The book")
    if book is None:
        _no_book("no chapter yet")
        return
    with queries.connect(url) as conn:
        count = queries.chapter_count(conn, book)
        if count == 0:
            st.info(f"{book!r} has no chapter yet: the first epoch's winning draft becomes chapter 1. {START_HINT}")
            return
        pages = -(-count // CHAPTERS_PER_PAGE)
        page = int(st.number_input(f"Page (1 = the latest chapters; {pages:,} pages)", min_value=1,
                                   max_value=pages, value=1, step=1, key="book_page"))
        first, last = book_page(count, page)
        frame = queries.chapters(conn, book, first, last)
        st.caption(f"Chapters {first:,}–{last:,} of {count:,}, in reading order.")
        for ch in frame.itertuples():
            st.subheader(f"Chapter {ch.chapter_number}: {md_escape(ch.title)}")
            won = describe_margin(None if pd.isna(ch.margin) else float(ch.margin))
            st.caption(f"by the {md_escape(ch.author)} · epoch {ch.epoch_number:,} · {won or 'unopposed'} · "
                       f"epoch score {_fmt(ch.epoch_score, '.2f')}")
            st.text(chapter_body(ch.text, ch.title))  # its title line is the heading above
            if ch.drafts > 1 and st.toggle(f"The multiverse: the {ch.drafts} drafts of epoch {ch.epoch_number:,} "
                                           "side by side, with their scores", key=f"multiverse_{ch.chapter_number}"):
                show_multiverse(queries.multiverse(conn, ch.epoch_id))
            st.divider()


def book_page(count: int, page: int, size: int = CHAPTERS_PER_PAGE) -> tuple[int, int]:
    """Chapter numbers on `page`, counted back from the latest chapter (page 1 ends with it)."""
    last = max(1, count - (page - 1) * size)
    return max(1, last - size + 1), last


def show_multiverse(drafts: pd.DataFrame, per_row: int = 3) -> None:
    for start in range(0, len(drafts), per_row):
        row = drafts.iloc[start:start + per_row]
        for col, d in zip(st.columns(per_row, border=True), row.itertuples(), strict=False):
            with col:
                crown = " — the canon" if d.canon else ""
                st.markdown(f"**{md_escape(d.agent)}**{crown}")
                st.caption(f"epoch score {_fmt(d.epoch_score, '.2f')} · mean vote {_fmt(d.mean_score, '.2f')} "
                           f"({d.votes} votes) · penalty {_fmt(d.penalty, '.2f')}"
                           + (" · truncated" if d.truncated else ""))
                st.text(d.text)


# ---- lineage ------------------------------------------------------------------------------------


def lineage(url: str, book: str | None) -> None:
    st.header("Lineage")
    if book is None:
        _no_book("no agent yet")
        return
    with queries.connect(url) as conn:
        total = queries.agent_count(conn, book)
        if total == 0:
            st.info(f"{book!r} has no agent yet. {START_HINT}")
            return
        summary = queries.lineage_summary(conn, book)
        shares = queries.lineage_shares(conn, book)
        pages = -(-total // AGENTS_PER_PAGE)
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
        page = int(st.number_input(f"Page of arrivals (of {pages:,}; the latest first)", min_value=1,
                                   max_value=pages, value=1, step=1, key="lineage_page"))
        frame = queries.lineage(conn, book, (page - 1) * AGENTS_PER_PAGE, AGENTS_PER_PAGE)
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


# ---- telemetry ----------------------------------------------------------------------------------


def telemetry(url: str, book: str | None) -> None:
    st.header("Telemetry")
    if book is None:
        _no_book("no telemetry yet")
        return
    with queries.connect(url) as conn:
        latest = queries.latest_epoch(conn, book)
        if latest is None:
            st.info(f"No epoch of {book!r} has run yet. {START_HINT}")
            return
        summary = queries.timing_summary(conn, book) or {}
        first, last = _epoch_window(latest["epoch_number"], "telemetry_window", limit=queries.MAX_WINDOW)
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
    m[1].metric("Mean epoch", f"{_fmt(summary.get('mean_duration_s'), '.2f')} s",
                help=f"p95 {_fmt(summary.get('p95_duration_s'), '.2f')} s")
    m[2].metric("Mean dead time", f"{_fmt(summary.get('mean_dead_s'), '.2f')} s",
                help=f"between one epoch's end and the next one's start while the loop runs; p95 "
                     f"{_fmt(summary.get('p95_dead_s'), '.2f')} s. {glossary_link('dead time')}")
    m[3].metric("Total dead time", f"{_fmt(summary.get('total_dead_s'), ',.0f')} s")
    m[4].metric("Downtime", f"{_fmt(summary.get('total_downtime_s'), ',.0f')} s",
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


# ---- similar drafts -----------------------------------------------------------------------------


def similar_drafts(url: str, book: str | None) -> None:
    st.header("Similar drafts")
    if book is None:
        _no_book("no draft yet")
        return
    with queries.connect(url) as conn:
        latest = queries.latest_epoch(conn, book)
        if latest is None:
            st.info(f"No epoch of {book!r} has run yet. {START_HINT}")
            return
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


# ---- glossary -------------------------------------------------------------------------------------


def glossary_view(url: str, book: str | None) -> None:
    st.header("Glossary")
    st.caption("The words of the tournament, from README.md (section 'Glossary'); the help texts of the other "
               "views link here.")
    for term, definition in glossary().items():
        st.markdown(f"**{md_escape(term)}**: {definition}")


VIEWS = [
    View("matrix", "Voting matrix (live)", voting_matrix),
    View("chopping-block", "On the chopping block", chopping_block),
    View("ratings", "Ratings over time", ratings_over_time),
    View("book", "The book", the_book),
    View("lineage", "Lineage", lineage),
    View("telemetry", "Telemetry", telemetry),
    View("similar", "Similar drafts", similar_drafts),
    View("glossary", "Glossary", glossary_view),
]
