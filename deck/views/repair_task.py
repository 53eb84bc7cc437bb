"""A CodeRepair epoch: the task it posed (the buggy function and what it should do), every candidate fix as
a diff against the buggy code, and each fix's hidden-test results beside its peer score, the winner marked.

The tests know the answer, the jury does not: this page puts the two side by side. A fix is model output,
shown only through `st.code` (verbatim) and data frames; its agent's name is escaped wherever Markdown is.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deck import queries
from deck.repair_text import changed_lines, fix_diff, shown_call
from deck.safe_text import md_escape
from deck.views.page import Page, book_view, bounded_state, readable


def body(page: Page) -> None:
    conn, book, latest = page.conn, page.book, page.latest
    last = int(latest["epoch_number"])
    bounded_state("repair_epoch", last, last)
    number = int(st.number_input("Epoch", min_value=1, max_value=last, step=1, key="repair_epoch"))
    epoch = latest if number == latest["epoch_number"] else queries.epoch(conn, book, number)
    task = queries.repair_task(conn, epoch["epoch_id"])
    if task is None:
        st.info(f"Epoch {number:,} of {book!r} has no task recorded yet: the burst records it when it starts.")
        return
    m = st.columns(4)
    m[0].metric("Epoch", f"{epoch['epoch_number']:,}", help=epoch["epoch_key"])
    m[1].metric("Status", epoch["status"])
    st.subheader(f"The task: {md_escape(task['task_id'])}")
    st.caption(f"Bug kind: {md_escape(task['kind'])} · the function {md_escape(task['function'])}")
    st.text(task["description"])
    st.code(task["buggy"].strip("\n"), language="python")
    if task["visible_tests"]:
        st.caption("The visible tests (the candidates saw these; the hidden tests score them):")
        st.code("\n".join(shown_call(task["function"], t) for t in task["visible_tests"]), language="python")

    candidates = queries.repair_candidates(conn, epoch["epoch_id"])
    if candidates.empty:
        st.info("No candidate fix has been written for this epoch yet.")
        return
    st.subheader(f"The {len(candidates)} candidate fixes")
    committed = epoch["status"] == "committed"
    st.caption("Hidden tests: the share each fix passed in the sandbox; fitness is the domain's combination of "
               "tests and peers (docs/code_repair.md). Peer score: the mean of the fix's blind ballot scores (1–10)"
               + ("." if committed else ", shown once the epoch commits (as the voting matrix names the authors)."))
    st.dataframe(results_table(candidates), hide_index=True, width="stretch")
    for c in candidates.itertuples():
        tested = "not tested yet" if pd.isna(c.status) else f"{c.status}, {int(c.passed)}/{int(c.total)} passed"
        crown = " — the winner" if c.winner else ""
        with st.expander(f"{md_escape(c.agent)}{crown}: {md_escape(tested)}", expanded=bool(c.winner)):
            code = "" if pd.isna(c.code) else c.code
            if not code.strip():
                st.warning("No code could be taken from this reply (it scores 0). The reply, as written:")
                st.text(c.reply)
                continue
            diff = fix_diff(task["buggy"], code)
            if diff:
                st.caption(f"{changed_lines(diff)} lines changed against the buggy function:")
                st.code(diff, language="diff")
            else:
                st.caption("The buggy function unchanged:")
                st.code(code.strip("\n"), language="python")


def results_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per fix: the test results beside the peer score, the winner marked, numbers readable."""
    frame = candidates.assign(
        winner=["✓" if w else "" for w in candidates["winner"]],
        tests=[("—" if pd.isna(s) else f"{int(p)}/{int(t)}")
               for s, p, t in zip(candidates["status"], candidates["passed"], candidates["total"], strict=True)],
        status=candidates["status"].fillna("not tested yet"),
        votes=["—" if pd.isna(v) else str(int(v)) for v in candidates["votes"]],
    )
    frame = readable(frame, {"pass_rate": ".0%", "fitness": ".3f", "peer_score": ".2f"})
    return frame[["winner", "agent", "status", "tests", "pass_rate", "fitness", "peer_score", "votes"]].rename(
        columns={"pass_rate": "pass rate", "peer_score": "peer score"})


VIEW = book_view("repair-task", "The task and its fixes", body, empty="no task to show", needs_epoch=True)
