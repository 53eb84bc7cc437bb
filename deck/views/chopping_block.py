"""On the chopping block: the living agents' standing, who the pipeline's own rule puts at the bottom, and
whether that bottom is separated from the rest, by the same functions the epoch uses."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deck import charts, queries
from deck.glossary import glossary_link
from deck.views.page import Page, book_view, readable
from dream_pipeline.tournament.elimination import GRACE_EPOCHS, pick_eliminated
from dream_pipeline.tournament.selection import bottom_is_separated


def body(page: Page) -> None:
    conn, book, latest = page.conn, page.book, page.latest
    rated = queries.latest_rated_epoch(conn, book)
    frame = queries.standings(conn, book, rated["epoch_id"] if rated else None)
    eliminations = queries.recent_eliminations(conn, book)
    current = queries.current_epoch_number(latest)
    if frame.empty:
        return page.nothing_yet("no living agent yet")
    frame = classify_standings(frame, current)
    bottom = frame.loc[frame["status"] == "at the bottom", "agent"]
    m = st.columns([1, 1, 2, 1])
    m[0].metric("Epoch being played", f"{current:,}")
    m[1].metric("Ratings after epoch", f"{rated['epoch_number']:,}" if rated else "—")
    m[2].metric("At the bottom", bottom.iloc[0] if not bottom.empty else "—")
    m[3].metric("Bottom separated", separation_now(frame),
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


def classify_standings(frame: pd.DataFrame, current_epoch: int) -> pd.DataFrame:
    """Add `status`: grace (a newcomer within its first `GRACE_EPOCHS` epochs), at the bottom (whom the
    pipeline's own elimination rule, `pick_eliminated`, picks on the stored elimination scores), not rated
    yet, or safe."""
    frame = frame.copy()
    grace = (frame["origin"] != "cast") & (frame["joined_epoch"] > current_epoch - GRACE_EPOCHS)
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


def separation_now(frame: pd.DataFrame) -> str:
    """Whether the bottom of `classify_standings` is separated, by the pipeline's own `bottom_is_separated`
    over the candidates (the agents at risk: safe or at the bottom); "—" while there is nothing to compare."""
    bottom = frame.loc[frame["status"] == "at the bottom"]
    others = frame[(frame["status"] == "safe") & frame["bt_lower"].notna()]
    if bottom.empty or others.empty or pd.isna(bottom["bt_upper"].iloc[0]):
        return "—"
    candidates = frame.loc[frame["status"].isin(["safe", "at the bottom"]), "agent"]
    lower, upper = (dict(zip(frame["agent"], pd.to_numeric(frame[c]).astype(float), strict=True))
                    for c in ("bt_lower", "bt_upper"))
    return "yes" if bottom_is_separated(bottom["agent"].iloc[0], lower, upper, list(candidates)) else "no"


VIEW = book_view("chopping-block", "On the chopping block", body, empty="no standing yet")
