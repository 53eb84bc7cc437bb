"""The book domain: its prompts, the context a draft sees (memory), how a chapter enters the canon."""
