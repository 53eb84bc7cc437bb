"""The book: the canon chapter by chapter, a page at a time, and per chapter its multiverse (every draft
of its epoch side by side, with its scores)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from deck import queries
from deck.safe_text import md_escape
from deck.views.page import Page, book_view, fmt, pick_page
from dream_pipeline.domains.book.prompts import chapter_body
from dream_pipeline.tournament.selection import describe_margin

CHAPTERS_PER_PAGE = 5


def body(page: Page) -> None:
    conn, book = page.conn, page.book
    count = queries.chapter_count(conn, book)
    if count == 0:
        return page.nothing_yet("no chapter yet: the first epoch's winning draft becomes chapter 1")
    number = pick_page(count, CHAPTERS_PER_PAGE, "Page (1 = the latest chapters; {pages} pages)", "book_page")
    first, last = book_page(count, number)
    frame = queries.chapters(conn, book, first, last)
    st.caption(f"Chapters {first:,}–{last:,} of {count:,}, in reading order.")
    for ch in frame.itertuples():
        st.subheader(f"Chapter {ch.chapter_number}: {md_escape(ch.title)}")
        won = describe_margin(None if pd.isna(ch.margin) else float(ch.margin))
        st.caption(f"by the {md_escape(ch.author)} · epoch {ch.epoch_number:,} · {won or 'unopposed'} · "
                   f"epoch score {fmt(ch.epoch_score, '.2f')}")
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
                st.caption(f"epoch score {fmt(d.epoch_score, '.2f')} · mean vote {fmt(d.mean_score, '.2f')} "
                           f"({d.votes} votes) · penalty {fmt(d.penalty, '.2f')}"
                           + (" · truncated" if d.truncated else ""))
                st.text(d.text)


VIEW = book_view("book", "The book", body, empty="no chapter yet")
