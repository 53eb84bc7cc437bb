"""The book's memory in a prompt, and the novelty rule: pure functions, no I/O.

The fabric supplies the rows (`StateFabric.book_memory`, `canon_similarity`); this module decides
what a draft prompt holds within its token budget and what repeating the canon costs. A token is a
whitespace-separated word, as the offline engine counts them. See docs/memory.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# what a section may hold before the budget is applied
RELATED_EXCERPT_TOKENS = 120  # the opening of an earlier related chapter
LAST_CHAPTER_FLOOR = 200  # the last chapter keeps at least its last 200 words until the summary is gone
LABEL_WORDS = 12  # titles and names inside section labels are clipped to this many words
ELLIPSIS = "…"

# novelty (docs/tournament_rules.md, section 5)
NOVELTY_THRESHOLD = 0.95  # cosine similarity to the canon from which a draft starts to lose points
NOVELTY_PENALTY_MAX = 5.0  # what a draft identical to a chapter loses (as much as a truncation)
NEAR_DUPLICATE_SIMILARITY = 0.97  # two drafts of one epoch at least this similar are flagged


def count_tokens(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Passage:
    """A chapter as the memory shows it."""

    number: int
    title: str
    author: str
    text: str
    similarity: float | None = None


OUTLINE_HEADER = "Chapters so far (latest):"
RELATED_HEADER = "Earlier chapters related to the current thread (their openings):"
OPENING = "No chapter has been written yet: you are opening the book."


@dataclass
class _Unit:
    """One trimmable piece of the prompt: a label and a body of words; no body, no label."""

    kind: str
    label: str
    words: list[str]
    keep: str = "head"  # which end survives shortening: 'head' or 'tail'

    def render(self) -> str:
        if not self.words:
            return ""
        body = " ".join(self.words)
        return f"{self.label}\n{body}" if self.label else body

    def shorten(self, count: int) -> None:
        """Keep `count` tokens of the body, an ellipsis included (0 empties it)."""
        if count >= len(self.words):
            return
        if count <= 1:  # a lone ellipsis says nothing
            self.words = []
        elif self.keep == "tail":
            self.words = [ELLIPSIS, *self.words[len(self.words) - count + 1:]]
        else:
            self.words = [*self.words[: count - 1], ELLIPSIS]


@dataclass(frozen=True)
class BookContext:
    """A draft prompt's user message, within `budget` tokens, and what was cut to get there."""

    text: str
    budget: int
    tokens: int
    section_tokens: dict[str, int]
    trimmed: tuple[str, ...]  # what was shortened or dropped, in the order it happened
    related: tuple[int, ...]  # numbers of the retrieved chapters that made it into the prompt
    summary_through: int | None  # the chapter the summary in the prompt runs up to

    def stats(self) -> dict[str, object]:
        return {
            "context_tokens": self.tokens,
            "context_budget": self.budget,
            "section_tokens": dict(self.section_tokens),
            "related_chapters": list(self.related),
            "summary_through": self.summary_through,
            "trimmed": list(self.trimmed),
        }


def _clip(text: str, words: int = LABEL_WORDS) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (f" {ELLIPSIS}" if len(parts) > words else "")


def build_context(
    *,
    title: str,
    premise: str,
    task: str,
    budget: int,
    summary: str | None = None,
    summary_through: int | None = None,
    last: Passage | None = None,
    related: Sequence[Passage] = (),
    outline: Sequence[Passage] = (),
) -> BookContext:
    """The memory of the book as one text of at most `budget` tokens, the `task` at its end.

    Sections, in prompt order: title and premise; the rolling summary; the outline (titles of the
    latest chapters); the openings of the earlier chapters most related to the last one (each at
    most RELATED_EXCERPT_TOKENS, most similar first); the last chapter in full; the task. Over
    budget, it is cut in this order until it fits: outline lines, oldest first; related chapters,
    least similar first; the last chapter, from its beginning, down to its last LAST_CHAPTER_FLOOR
    words; the summary, from its end; the rest of the last chapter; the premise; the title. The task
    is never cut: a task longer than the budget is a ValueError.
    """
    if count_tokens(task) > budget:
        raise ValueError(f"the task alone has {count_tokens(task)} tokens, more than the budget of {budget}")
    title_unit = _Unit("title", "Book:", title.split())
    premise_unit = _Unit("premise", "Premise:", premise.split())
    summary_unit = _Unit(
        "summary",
        f"The story so far (summary through chapter {summary_through}):" if summary_through else "The story so far:",
        (summary or "").split(),
    )
    outline_units = [
        _Unit("outline", "", f"{p.number}. {_clip(p.title)} (by the {_clip(p.author, 4)})".split())
        for p in outline
    ]
    ranked = sorted(related, key=lambda p: -(p.similarity if p.similarity is not None else -math.inf))
    related_units = []
    for p in ranked:
        unit = _Unit(f"related:{p.number}", f"[chapter {p.number}: {_clip(p.title)}, by the {_clip(p.author, 4)}]",
                     p.text.split())
        unit.shorten(RELATED_EXCERPT_TOKENS)  # an opening by design, not a cut forced by the budget
        if unit.words:
            related_units.append(unit)
    last_unit = _Unit(
        "last_chapter",
        f"The last chapter, {last.number}: {_clip(last.title)} (by the {_clip(last.author, 4)}):" if last else "",
        last.text.split() if last else [],
        keep="tail",
    )
    opening_unit = _Unit("opening", "", [] if last else OPENING.split())

    def sections() -> dict[str, str]:
        return {
            "title": title_unit.render(),
            "premise": premise_unit.render(),
            "summary": summary_unit.render(),
            "outline": OUTLINE_HEADER + "\n" + "\n".join("  " + u.render() for u in outline_units)
            if outline_units else "",
            "related": RELATED_HEADER + "\n" + "\n".join(u.render() for u in related_units)
            if related_units else "",
            "last_chapter": last_unit.render(),
            "opening": opening_unit.render(),
            "task": task,
        }

    def excess() -> int:
        return sum(count_tokens(t) for t in sections().values()) - budget

    trimmed: list[str] = []
    while outline_units and excess() > 0:
        outline_units.pop(0)
        trimmed.append("dropped an outline line")
    while related_units and excess() > 0:
        trimmed.append(f"dropped related chapter {related_units.pop().kind.split(':')[1]}")
    for unit, floor in ((last_unit, LAST_CHAPTER_FLOOR), (summary_unit, 0), (last_unit, 0),
                        (opening_unit, 0), (premise_unit, 0), (title_unit, 0)):
        over = excess()
        if over <= 0:
            break
        if len(unit.words) > floor:
            unit.shorten(max(floor, len(unit.words) - over))
            trimmed.append(f"shortened {unit.kind} to {len(unit.words)} tokens")

    parts = sections()
    text = "\n\n".join(t for t in parts.values() if t)
    tokens = count_tokens(text)
    if tokens > budget:  # unreachable: everything but the task can be cut to nothing
        raise AssertionError(f"context of {tokens} tokens over its budget of {budget}")
    return BookContext(
        text=text,
        budget=budget,
        tokens=tokens,
        section_tokens={k: count_tokens(v) for k, v in parts.items()},
        trimmed=tuple(trimmed),
        related=tuple(int(u.kind.split(":")[1]) for u in related_units),
        summary_through=summary_through if summary_unit.words else None,
    )


# ---- novelty ---------------------------------------------------------------------------------------


def novelty_penalty(
    canon_similarity: float | None,
    *,
    threshold: float = NOVELTY_THRESHOLD,
    max_penalty: float = NOVELTY_PENALTY_MAX,
) -> float:
    """Points lost for repeating the canon: 0 up to `threshold`, then linear up to `max_penalty` at
    similarity 1 (`max_penalty * (s - threshold) / (1 - threshold)`). No canon (None, NaN) costs 0."""
    if canon_similarity is None or math.isnan(canon_similarity):
        return 0.0
    if not 0.0 <= threshold < 1.0:
        raise ValueError("threshold must be in [0, 1)")
    share = (canon_similarity - threshold) / (1.0 - threshold)
    return max_penalty * min(1.0, max(0.0, share))


@dataclass(frozen=True)
class PeerSimilarity:
    closest: str | None  # the most similar other draft's author
    similarity: float | None
    near_duplicate: bool


def peer_similarities(
    names: Sequence[str], vectors: Sequence[Sequence[float]], *, threshold: float = NEAR_DUPLICATE_SIMILARITY
) -> dict[str, PeerSimilarity]:
    """For each draft of an epoch, its most similar sibling by cosine similarity, flagged as a near
    duplicate at `threshold` or above. Ties go to the alphabetically first name."""
    if len(names) != len(vectors):
        raise ValueError("one vector per name")
    if len(names) < 2:
        return {n: PeerSimilarity(None, None, False) for n in names}
    m = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1)
    norms[norms == 0] = 1.0
    return _closest(names, (m / norms[:, None]) @ (m / norms[:, None]).T, threshold)


def lexical_peer_similarities(
    names: Sequence[str], texts: Sequence[str], *, threshold: float = NEAR_DUPLICATE_SIMILARITY
) -> dict[str, PeerSimilarity]:
    """`peer_similarities` without embeddings: by `lexical_similarity` of the texts."""
    if len(names) != len(texts):
        raise ValueError("one text per name")
    if len(names) < 2:
        return {n: PeerSimilarity(None, None, False) for n in names}
    sims = np.array([[lexical_similarity(a, b) for b in texts] for a in texts])
    return _closest(names, sims, threshold)


SHINGLE_WORDS = 3


def shingles(text: str, size: int = SHINGLE_WORDS) -> frozenset[tuple[str, ...]]:
    words = [w.lower().strip(".,;:!?\"'()[]") for w in text.split()]
    words = [w for w in words if w]
    if len(words) < size:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + size]) for i in range(len(words) - size + 1))


def lexical_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the word 3-shingles of two texts, in [0, 1]: 1 for the same words in the same
    order, near 0 for different prose on the same subject (character trigrams, pg_trgm's measure, are
    shared by almost any two long English texts). The novelty rule's stand-in for cosine similarity when
    there is no embedding engine."""
    x, y = shingles(a), shingles(b)
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def _closest(names: Sequence[str], sims: np.ndarray, threshold: float) -> dict[str, PeerSimilarity]:
    out = {}
    for i, name in enumerate(names):
        best = None
        for j in sorted((j for j in range(len(names)) if j != i), key=lambda j: names[j]):
            if best is None or sims[i, j] > sims[i, best]:
                best = j
        similarity = float(sims[i, best])
        out[name] = PeerSimilarity(names[best], similarity, similarity >= threshold)
    return out
