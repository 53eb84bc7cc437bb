"""Themes: the bundled corpus, which persona writes from which theme, and recognising a theme in text.

A persona's theme is picked by keyword from the name it is given in its system message ("You are
the Physicist"), else from the earliest keyword of the whole message; an unknown persona gets a
theme by a stable hash of its name. Keywords in the boilerplate around a name ("one author in a
writers' tournament") never decide: they would give every unnamed persona the Poet's theme. Reviewers recognise the theme a draft came
from by its distinctive vocabulary (words found in one theme's corpus only), which is how a
persona's hidden quality can follow its prose without any marker in the text.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

THEME_KEYWORDS: dict[str, tuple[str, ...]] = {
    "physics": ("physicist", "astronomer", "chemist", "scientist"),
    "political_economy": ("financier", "economist", "banker", "merchant", "trader", "investor", "accountant"),
    "statecraft": ("politician", "statesman", "stateswoman", "diplomat", "senator", "governor", "minister"),
    "geometry": ("mathematician", "geometer", "logician", "statistician"),
    "machines": ("technologist", "engineer", "inventor", "machinist", "programmer", "architect"),
    "navigation": ("cartographer", "navigator", "explorer", "geographer", "sailor", "captain"),
    "medicine": ("physician", "doctor", "surgeon", "nurse", "medic"),
    "music": ("composer", "musician", "conductor", "singer"),
    "law": ("jurist", "lawyer", "judge", "magistrate", "advocate", "attorney"),
    "philosophy": ("philosopher", "ethicist", "theologian", "sceptic", "skeptic"),
    "history": ("historian", "chronicler", "archivist", "antiquarian"),
    "natural_history": ("biologist", "naturalist", "botanist", "zoologist", "ecologist", "geneticist"),
    "poetry": ("poet", "novelist", "playwright", "writer", "bard", "dramatist"),
}
THEMES: tuple[str, ...] = tuple(THEME_KEYWORDS)

_KEYWORD_RE = re.compile(
    r"\b(" + "|".join(sorted({k for ks in THEME_KEYWORDS.values() for k in ks}, key=len, reverse=True))
    + r")s?\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
CORPUS_DIR = Path(__file__).with_name("corpus")


def stable_unit(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across processes (unlike `hash`)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def keyword_theme(keyword: str) -> str | None:
    """The theme a persona keyword ("Physicist", "physics", "poet") belongs to, if any."""
    k = keyword.strip().lower()
    if k in THEME_KEYWORDS:
        return k
    for theme, words in THEME_KEYWORDS.items():
        if k in words or k.rstrip("s") in words:
            return theme
    return None


_PERSONA_RE = re.compile(r"\b(?:You are|I am|Your name is)\s+(?:the\s+|an?\s+)?([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")


def persona_of(system: str) -> str | None:
    """The name a system message gives its persona ("You are the Physicist, ..." -> "Physicist")."""
    m = _PERSONA_RE.search(system or "")
    return m.group(1) if m else None


def theme_for_system(system: str) -> str:
    """The theme of the persona's name keyword; for a named persona without one, a stable hash of the
    name; for an unnamed one, the earliest keyword of the message, else a hash of it."""
    name = persona_of(system)
    text = name if name is not None else system or ""
    m = _KEYWORD_RE.search(text)
    if m:
        theme = keyword_theme(m.group(1))
        if theme:
            return theme
    return THEMES[int(stable_unit("theme", text) * len(THEMES))]


@lru_cache(maxsize=None)
def corpus_text(theme: str) -> str:
    """The theme's corpus without its heading line."""
    return _raw(theme).split("\n", 1)[1].strip()


@lru_cache(maxsize=None)
def corpus_heading(theme: str) -> str:
    return _raw(theme).split("\n", 1)[0].strip()


def _raw(theme: str) -> str:
    return (CORPUS_DIR / f"{theme}.txt").read_text("utf-8")


def words_of(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


@lru_cache(maxsize=1)
def distinctive_vocabulary() -> dict[str, frozenset[str]]:
    """Per theme, the words of four letters or more that occur in no other theme's corpus."""
    vocab = {t: {w for w in words_of(corpus_text(t)) if len(w) >= 4} for t in THEMES}
    seen = Counter(w for ws in vocab.values() for w in ws)
    return {t: frozenset(w for w in ws if seen[w] == 1) for t, ws in vocab.items()}


def recognise_theme(text: str) -> str | None:
    """The theme whose distinctive words dominate `text`, or None when it is not clear."""
    words = words_of(text)
    scores = {t: sum(1 for w in words if w in vocab) for t, vocab in distinctive_vocabulary().items()}
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= 3 and top >= 2 * second:
        return best
    return None


_NUMERAL_RE = re.compile(r"\s(?=[IVXLCDM]+$)(M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3}))$")

STREAK_SHARE = (0.15, 0.45)
"""A mutation writes this share of its sentences (by a stable hash of its name) in a second theme."""


def mutation_streak(system: str) -> tuple[str, float] | None:
    """A mutation's own streak: (a second theme, the share of its sentences written in it), both from a
    stable hash of its name; None for a persona that is no mutation (no Roman numeral after its name).

    A mutation writes like its parent, perturbed: mostly in its parent's theme, partly in another, so
    its drafts carry a planted quality of their own (`persona_quality`) that a reviewer reads from the
    text alone, with every name scrubbed."""
    name = persona_of(system)
    if name is None or not _NUMERAL_RE.search(name):
        return None
    own = theme_for_system(system)
    others = [t for t in THEMES if t != own]
    lo, hi = STREAK_SHARE
    return others[int(stable_unit("streak", name) * len(others))], lo + (hi - lo) * stable_unit("streak share", name)


def theme_shares(text: str) -> dict[str, float]:
    """The themes a text is written in, by their share of its distinctive words: the dominant theme
    alone when `recognise_theme` finds one and no second theme holds 3+ words and a tenth of the two;
    else the top two by share; empty when the text has no clear theme."""
    words = words_of(text)
    scores = {t: sum(1 for w in words if w in vocab) for t, vocab in distinctive_vocabulary().items()}
    (best, top), (second_theme, second) = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:2]
    if top >= 3 and second >= 3 and second >= 0.1 * (top + second):
        return {best: top / (top + second), second_theme: second / (top + second)}
    theme = recognise_theme(text)
    return {theme: 1.0} if theme else {}


def persona_quality(system: str, seed: int, qualities: dict[str, float]) -> float:
    """The planted quality of the persona behind `system`: its theme's, or for a mutation its parent's
    theme's perturbed by its streak, `(1 - share) q(theme) + share q(streak)`."""
    q = hidden_quality(theme_for_system(system), seed, qualities)
    streak = mutation_streak(system)
    if streak is None:
        return q
    other, share = streak
    return (1.0 - share) * q + share * hidden_quality(other, seed, qualities)


def hidden_quality(theme: str, seed: int, qualities: dict[str, float]) -> float:
    """The hidden quality of a theme: a configured keyword's value if any, else from the seed."""
    for keyword, q in sorted(qualities.items()):
        if keyword_theme(keyword) == theme:
            return q
    return 0.25 + 0.6 * stable_unit("quality", seed, theme)
