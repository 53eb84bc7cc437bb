"""Showing text written by the agents without ever letting it format or script the page.

Drafts, titles, rationales and persona names are model output: hostile data. Streamlit never gets
`unsafe_allow_html`; long text goes through `st.text` (shown verbatim), and short text that sits
inside Markdown (a heading, a caption) has every ASCII punctuation character backslash-escaped,
which CommonMark renders literally — `<script>` stays the eight characters `<script>`.
"""

from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")


def md_escape(text: object) -> str:
    """`text` as Markdown that renders exactly as written, on one line."""
    flat = " ".join(str(text).split())
    return _PUNCTUATION.sub(r"\\\1", flat)


def dot_quote(text: object) -> str:
    """A Graphviz quoted ID (never an HTML-like label)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
