"""How many tokens a request takes, estimated without the server's tokenizer, and what room it leaves.

The project cannot know every engine's tokenizer, so it estimates, and errs on the large side:
``estimate_tokens(text) = max(whitespace words, ceil(characters / 3))``. Real tokenizers give about
one token per four characters of English prose and at least one per word, so the estimate is
above them for prose (the offline engine counts whitespace words, which the estimate never
undercounts). It can undercount text with no spaces in a script a tokenizer splits finely (CJK);
``CONTEXT_MARGIN_TOKENS`` is the slack kept free in every request for that and for the chat
template's own tokens (``MESSAGE_OVERHEAD_TOKENS`` per message).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "CHARS_PER_TOKEN",
    "CONTEXT_MARGIN_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "estimate_tokens",
    "messages_tokens",
    "completion_room",
    "prefix_within",
]

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators a chat template adds around each message
CONTEXT_MARGIN_TOKENS = 128  # kept free in every request: the estimate's error, the template's own tokens


def estimate_tokens(text: str) -> int:
    """An upper estimate of ``text``'s tokens: the larger of its whitespace words and ``len / 3``."""
    return max(len(text.split()), math.ceil(len(text) / CHARS_PER_TOKEN))


def messages_tokens(messages: Iterable[Mapping[str, str]]) -> int:
    """Estimated prompt tokens of a chat request's messages, template overhead included."""
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def completion_room(context_tokens: int, prompt_tokens: int, *, margin: int = CONTEXT_MARGIN_TOKENS) -> int:
    """Tokens a completion may take after a prompt of ``prompt_tokens`` in a window of ``context_tokens``
    (never negative)."""
    return max(0, context_tokens - prompt_tokens - margin)


def prefix_within(text: str, tokens: int) -> int:
    """The length (in characters) of the longest prefix of ``text`` whose estimate is at most ``tokens``
    (the whole text when it fits). The cut falls on the character bound, or before the word that
    would exceed the word count."""
    if tokens <= 0:
        return 0
    if estimate_tokens(text) <= tokens:
        return len(text)
    end = min(len(text), tokens * CHARS_PER_TOKEN)
    while end > 0 and len(text[:end].split()) > tokens:
        # too many short words: cut before the (tokens+1)-th word
        starts = [i for i in range(end) if not text[i].isspace() and (i == 0 or text[i - 1].isspace())]
        end = starts[tokens] if len(starts) > tokens else end - 1
    return end
