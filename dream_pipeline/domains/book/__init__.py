"""The book domain: its prompts, the context a draft sees (memory), how a chapter enters the canon, and
the SPICA derivative the loop runs (domain.py)."""

DEFAULT_BOOK = "space_time"  # the book `dream` commands read and write unless --book names another
