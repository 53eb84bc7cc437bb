"""How good is the jury? Per voter, the Spearman correlation of its ballot scores with the candidates'
hidden-test pass rates (`voter_calibration`, one row per epoch and voter): in the latest epoch, and its
mean over the last N epochs."""

from __future__ import annotations

import streamlit as st

from deck import charts, queries
from deck.views.page import Page, book_view, bounded_state, readable

DEFAULT_EPOCHS = 20
MEANING = ("Spearman's ρ ranks a voter's scores against the hidden tests' pass rates of the fixes it reviewed: "
           "+1 means it ranked the fixes exactly as the tests did, 0 that its scores tell nothing about which fix "
           "works, below 0 that it preferred the broken ones. It is undefined (—) in an epoch where the voter gave "
           "every fix the same score, or every fix passed the same share of tests.")


def body(page: Page) -> None:
    conn, book = page.conn, page.book
    latest = queries.latest_calibrated_epoch(conn, book)
    if latest is None:
        return page.nothing_yet("no calibration yet: it is recorded when an epoch's fixes are tested and its "
                                "votes counted")
    st.caption(MEANING)
    last = int(latest["epoch_number"])
    bounded_state("calibration_window", last, min(DEFAULT_EPOCHS, last))
    window = int(st.number_input("Mean over the last N epochs", min_value=1, max_value=last, step=1,
                                 key="calibration_window"))
    first = max(1, last - window + 1)
    means = queries.calibration_window(conn, book, first, last)
    st.subheader(f"Each voter over epochs {first:,}–{last:,}")
    defined = means.dropna(subset=["mean_spearman"])
    if not defined.empty:  # an undefined interval (one epoch) is drawn as a point at the mean
        half = defined["ci95"].fillna(0.0)
        bounded = defined.assign(lower=(defined["mean_spearman"] - half).clip(-1, 1),
                                 upper=(defined["mean_spearman"] + half).clip(-1, 1))
        st.altair_chart(charts.calibration_bars(bounded), width="stretch")
    st.dataframe(readable(means, {"mean_spearman": "+.2f", "ci95": ".2f"}).rename(columns={
        "mean_spearman": "mean ρ", "ci95": "± (95 %)", "epochs": "n (epochs with ρ)",
        "undefined": "epochs undefined", "last_epoch": "last epoch"}), hide_index=True, width="stretch")
    st.caption("n counts the epochs in which the voter's ρ was defined; the interval is 1.96 standard errors of "
               "the mean (— under two epochs).")
    st.subheader(f"The latest epoch calibrated ({last:,})")
    one = queries.epoch_calibration(conn, latest["epoch_id"])
    st.dataframe(readable(one, {"spearman": "+.2f"}).rename(columns={"spearman": "ρ", "n": "fixes ranked"}),
                 hide_index=True, width="stretch")


VIEW = book_view("calibration", "Jury calibration", body, heading="How good is the jury?",
                 empty="no calibration to show")
