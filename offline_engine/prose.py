"""Deterministic, persona-flavoured prose from an order-2 word Markov chain over the bundled corpus.

A "token" here is a whitespace-separated word: `count_tokens(text) == len(text.split())`. It is
crude next to a real tokenizer, but it is exact, stable and easy to check, which is what the
truncation contract needs: a draft longer than `max_tokens` is cut after exactly `max_tokens`
words and reported with finish_reason "length".
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from offline_engine.themes import (
    THEME_KEYWORDS,
    corpus_text,
    mutation_streak,
    persona_of,
    stable_unit,
    theme_for_system,
    words_of,
)

DEFAULT_CAP = 4096
"""Tokens a rambling draft may run to when the request sets no max_tokens (a context limit)."""

NORMAL_LENGTH = (250, 700)

_TOKEN_RE = re.compile(r"\S+")
_SENTENCE_END = (".", "!", "?")
_NAME_RE = re.compile(r"\b(?:You are|I am|Your name is|named|called)\s+(?:the\s+)?([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)")
_CHAPTER_RE = re.compile(r"\bchapter\s+(\d+)", re.IGNORECASE)
_STOP = frozenset(
    "about above after again against because before being below between cannot could during every "
    "other should their there these those through under until which while would yourself yourselves "
    "always never write writes writing chapter persona voice style draft drafts reader readers please "
    "answer respond response words tokens agent agents tournament another anonymous".split()
)

_KEYWORDS = frozenset(k for ks in THEME_KEYWORDS.values() for k in ks) | frozenset(THEME_KEYWORDS)

_DANGLING = frozenset(
    "a an the and or but nor of to in on at by for from with as that which who whom whose than then "
    "is are was were be been its their his her our my your this these those it not no so if when where "
    "while because unless until upon into through".split()
)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str

    @property
    def tokens(self) -> int:
        return count_tokens(self.text)


def count_tokens(text: str) -> int:
    return len(text.split())


def truncate_tokens(text: str, max_tokens: int) -> str:
    """The prefix of `text` holding exactly its first `max_tokens` tokens."""
    if max_tokens <= 0:
        return ""
    for i, m in enumerate(_TOKEN_RE.finditer(text), start=1):
        if i == max_tokens:
            return text[: m.end()]
    return text


def fit(text: str, max_tokens: int | None) -> Completion:
    """Cut `text` to `max_tokens` and say whether it was cut, as a server does at its cap."""
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return Completion(truncate_tokens(text, max_tokens), "length")
    return Completion(text, "stop")


class Chain:
    """An order-2 word chain with a light order-1 back-off, so drafts branch instead of reciting."""

    def __init__(self, text: str) -> None:
        words = text.split()
        self.next2: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.next1: dict[str, list[str]] = defaultdict(list)
        self.starts: list[tuple[str, str]] = []
        for i in range(len(words) - 2):
            self.next2[(words[i], words[i + 1])].append(words[i + 2])
        for i in range(len(words) - 1):
            self.next1[words[i]].append(words[i + 1])
            if (i == 0 or words[i - 1].endswith(_SENTENCE_END)) and words[i][:1].isupper():
                self.starts.append((words[i], words[i + 1]))
        self.lower_vocab = frozenset(w for w in words if w[:1].islower())
        self.title_words = sorted(
            {b.strip(".,;:") for a, b in zip(words, words[1:], strict=False)
             if a.lower() == "the" and b.isalpha() and len(b) >= 5 and b.islower()}
        )

    def sentence(self, rng: random.Random, max_words: int = 48) -> list[str]:
        for _ in range(8):
            w1, w2 = rng.choice(self.starts)
            out, visited = [w1, w2], {(w1, w2)}
            while not out[-1].endswith(_SENTENCE_END) and len(out) < max_words:
                options = self.next2.get((out[-2], out[-1]))
                if not options or (len(set(options)) == 1 and rng.random() < 0.15):
                    options = self.next1.get(out[-1]) or options
                fresh = [o for o in options or () if (out[-1], o) not in visited]
                if not fresh:
                    fresh = [o for o in self.next1.get(out[-1], ()) if (out[-1], o) not in visited]
                if not fresh:
                    break
                out.append(rng.choice(fresh))
                visited.add((out[-2], out[-1]))
            if len(out) >= 5:
                break
        if not out[-1].endswith(_SENTENCE_END):
            while len(out) > 4 and out[-1].lower().rstrip(",;:") in _DANGLING:
                out.pop()
            out[-1] = out[-1].rstrip(",;:") + "."
        return out


@lru_cache(maxsize=None)
def chain_for(theme: str) -> Chain:
    return Chain(corpus_text(theme))


def persona_name(system: str) -> str | None:
    m = _NAME_RE.search(system or "")
    return m.group(1).strip() if m else None


def voice_words(system: str, limit: int = 3) -> list[str]:
    """A few long words from the persona's own description, to be woven into its prose."""
    seen: list[str] = []
    for w in words_of(system or ""):
        if len(w) >= 7 and w not in _STOP and w not in _KEYWORDS and w not in seen:
            seen.append(w)
    return seen[:limit]


def _lower_first(word: str, chain: Chain) -> str:
    low = word[:1].lower() + word[1:]
    return low if low.strip(".,;:") in chain.lower_vocab or word == "A" else word


def _voiced(sentence: list[str], name: str | None, motifs: list[str], chain: Chain,
            rng: random.Random) -> list[str]:
    if name and rng.random() < 0.5:
        lead = rng.choice([f"As {name} has often observed,", f"{name} would put it plainly:",
                           f"In the view of {name},"])
        first = sentence[0] if lead.endswith(":") else _lower_first(sentence[0], chain)
        return lead.split() + [first] + sentence[1:]
    if motifs:
        motif = rng.choice(motifs)
        return sentence + rng.choice([
            f'One word, "{motif}", sums up the whole of it.',
            f'If a single word must stand for all this, let it be "{motif}".',
            f'The attentive reader will hear in it the old note: "{motif}".',
        ]).split()
    return sentence


def title_line(rng: random.Random, user: str, chain: Chain) -> str | None:
    # the last mention is the instruction; earlier ones may be quoted chapters
    numbers = _CHAPTER_RE.findall(user or "")
    if not numbers or len(chain.title_words) < 2:
        return None
    a, b = rng.sample(chain.title_words, 2)
    return f"Chapter {numbers[-1]}: The {a.capitalize()} and the {b.capitalize()}"


VERBOSITY_SPREAD = 1.5
"""How far a persona's chance of rambling moves from the engine's rate, in log-odds (either way)."""


def persona_long_draft_rate(system: str, long_draft_rate: float) -> float:
    """Verbosity is a trait: each named persona rambles more or less often than `long_draft_rate`.

    The rate is shifted in log-odds by up to ±VERBOSITY_SPREAD, stably per persona name, so the
    truncation penalty says something about the writer; 0 and 1 stay 0 and 1."""
    name = persona_of(system)
    if name is None or long_draft_rate <= 0.0 or long_draft_rate >= 1.0:
        return long_draft_rate
    shift = VERBOSITY_SPREAD * (2.0 * stable_unit("verbosity", name) - 1.0)
    return 1.0 / (1.0 + math.exp(-(math.log(long_draft_rate / (1.0 - long_draft_rate)) + shift)))


LENGTH_REFERENCE = 900
"""The cap at which a persona's rate is its chance of running past it (the benchmark's cap)."""

LENGTH_SIGMA = 0.3
"""Spread of one persona's log draft length: that of the 250-700 range drafts had before (0.30)."""


def draft_length(rng: random.Random, rate: float, cap: int) -> int:
    """How many tokens a persona of this rate means to write: a verbose writer's whole drafts run long too.

    0 < rate < 1: log-normal, median `LENGTH_REFERENCE * exp(-LENGTH_SIGMA * z)` with `z` the normal
    quantile that puts a share `rate` of drafts past `LENGTH_REFERENCE` tokens; the length does not
    depend on the cap, so a larger cap cuts fewer drafts. Rate 0: 250-700 tokens, never past the cap
    of a draft; rate 1: always past the cap."""
    if rate <= 0.0:
        return rng.randint(*NORMAL_LENGTH)
    if rate >= 1.0:
        return cap + 1
    z = statistics.NormalDist().inv_cdf(1.0 - rate)
    return max(1, round(LENGTH_REFERENCE * math.exp(LENGTH_SIGMA * (rng.gauss(0.0, 1.0) - z))))


def write_prose(rng: random.Random, system: str, user: str, max_tokens: int | None,
                long_draft_rate: float) -> Completion:
    """A draft in the persona's theme, as long as `draft_length` says for the persona's own rate
    around `long_draft_rate` (`persona_long_draft_rate`), cut at the cap (finish_reason "length")."""
    chain = chain_for(theme_for_system(system))
    streak = mutation_streak(system)
    name, motifs = persona_name(system), voice_words(system)
    cap = max_tokens if max_tokens is not None else DEFAULT_CAP
    target = draft_length(rng, persona_long_draft_rate(system, long_draft_rate), cap)

    title = title_line(rng, user, chain)
    paragraphs: list[str] = [title] if title else []
    total = count_tokens(title or "")
    ends_whole = target <= cap  # a draft meant to fit ends on a whole sentence before the cap
    while total < target:
        sentences: list[str] = []
        voice_at = rng.randrange(4) if rng.random() < 0.6 else -1
        for i in range(rng.randint(3, 6)):
            words = (chain_for(streak[0]) if streak and rng.random() < streak[1] else chain).sentence(rng)
            if i == voice_at:
                words = _voiced(words, name, motifs, chain, rng)
            if ends_whole and total + len(words) > cap:
                target = total
                break
            sentences.append(" ".join(words))
            total += len(words)
            if total >= target:
                break
        if sentences:
            paragraphs.append(" ".join(sentences))
    return fit("\n\n".join(paragraphs), cap)


def short_reply(rng: random.Random, system: str) -> str:
    """One or two sentences in the persona's theme, for JSON-mode requests without drafts."""
    chain = chain_for(theme_for_system(system))
    return " ".join(" ".join(chain.sentence(rng, max_words=30)) for _ in range(rng.randint(1, 2)))
