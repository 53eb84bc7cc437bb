"""The glossary: README.md's "Glossary" section, every term of it; the other views' help texts link here.
It needs no book, so it shows on an empty fabric too."""

from __future__ import annotations

import streamlit as st

from deck.glossary import glossary
from deck.safe_text import md_escape
from deck.views.page import View


def render(url: str, book: str | None) -> None:
    st.header("Glossary")
    st.caption("The words of the tournament, from README.md (section 'Glossary'); the help texts of the other "
               "views link here.")
    for term, definition in glossary().items():
        st.markdown(f"**{md_escape(term)}**: {definition}")


VIEW = View("glossary", "Glossary", render)
