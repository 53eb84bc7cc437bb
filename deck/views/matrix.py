"""The voting matrix, live: who scored whom in the epoch being played (or any epoch), refreshed in place.

While the epoch runs, a voter's columns are the drafts in the order it read them, under the masks it saw;
the authors appear once the epoch commits.
"""

from __future__ import annotations

import streamlit as st

from deck import charts, queries
from deck.glossary import glossary_link
from deck.safe_text import md_escape
from deck.views.page import REFRESH_SECONDS, START_HINT, Page, book_view
from dream_pipeline.tournament.review_design import MAX_REVIEWS_PER_VOTER


def body(page: Page) -> None:
    """The controls and the matrix, refreshed together: while it follows the live epoch, the (disabled)
    Epoch box shows the live epoch's number."""
    conn, book, live = page.conn, page.book, page.latest
    controls = st.columns([1, 1, 2], vertical_alignment="bottom")
    follow = controls[0].toggle("Follow the live epoch", value=True, key="matrix_follow")
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
        won = "The winning fix is by" if page.family == "code_repair" else "Chapter won by"
        st.markdown(f"{won} **{md_escape(epoch['winner'])}**; {loser}.")
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


VIEW = book_view("matrix", "Voting matrix (live)", body, heading="The voting matrix, live", empty="no ballot to show",
                 live=True)
