"""De-identification: a draft as a voter reads it, with every name and role word of the book scrubbed.

Masked labels hide who wrote a draft; the text can still say it ("As the Physicist has often observed,
…", "I, the Financier, …"). Before a draft reaches a ballot, every name, base name and role word of
the book's agents (living, retired and reserve; a mutation's numeral with its name) is replaced
by a neutral word, whatever its case, plural or possessive, so self-naming prose tells a voter
nothing about its author. Deterministic and pure: the same text and terms give the same result, and
what was masked is returned so it can be recorded. The committed chapter keeps the original text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["NEUTRAL", "Scrubbed", "identity_terms", "scrub", "leaked_terms"]

NEUTRAL = "someone"
# a mutation's generation ("Physician XXXI") goes with its name; upper case only, whatever the rest of
# the pattern's flags, so a lowercase word of numeral letters ("did", "mild", "vivid") is prose, not a numeral
_NUMERAL = r"(?-i:(?:\s+(?!I\b)[IVXLCDM]+\b)?)"
_MIN_TERM = 3  # shorter words ("Al") would scrub ordinary prose


@dataclass(frozen=True)
class Scrubbed:
    """A draft as shown to voters, and how often each identity term was masked in it."""

    text: str
    masked: tuple[tuple[str, int], ...]  # (term, count), sorted by term

    @property
    def count(self) -> int:
        return sum(n for _, n in self.masked)


def identity_terms(personas: Iterable[Mapping[str, object] | str]) -> tuple[str, ...]:
    """Every word that names an agent of the book: names, base names, roles and each word of them.

    ``personas`` are manifests (``name``, ``base_name``, ``role``) or plain names. Roman numerals
    are dropped (they are masked with the name they follow); words under three letters are ignored.
    """
    terms: set[str] = set()
    for persona in personas:
        values = [persona] if isinstance(persona, str) else [
            persona.get(key) for key in ("name", "base_name", "role")
        ]
        for value in values:
            if not isinstance(value, str):
                continue
            words = [w for w in re.findall(r"[^\W\d_][\w'-]*", value) if not re.fullmatch(r"[IVXLCDM]+", w)]
            phrase = " ".join(words)
            for term in [phrase, *words]:
                if len(term) >= _MIN_TERM:
                    terms.add(term.casefold())
    return tuple(sorted(terms, key=lambda t: (-len(t), t)))


@lru_cache(maxsize=64)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(set(terms), key=lambda t: (-len(t), t))  # longest first: "Physician II" before "Physician"
    alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in ordered)
    return re.compile(
        rf"\b(?P<article>(?:the|a|an)\s+)?(?P<term>{alternatives}){_NUMERAL}(?P<suffix>'s\b|s'(?!\w)|es'(?!\w)|es\b|s\b|\b)",
        re.IGNORECASE,
    )


def scrub(text: str, terms: Iterable[str]) -> Scrubbed:
    """``text`` with every identity term (plus its article, numeral, plural or possessive) replaced."""
    key = tuple(sorted({t.casefold() for t in terms if len(t) >= _MIN_TERM}))
    if not key or not text:
        return Scrubbed(text, ())
    seen: Counter[str] = Counter()

    def replace(match: re.Match[str]) -> str:
        seen[" ".join(match["term"].casefold().split())] += 1
        suffix = (match["suffix"] or "").casefold()
        word = NEUTRAL + ("'s" if "'" in suffix else "")
        if match["article"] is None and match.group(0)[:1].isupper():
            word = word.capitalize()
        elif match["article"] is not None and match["article"][:1].isupper():
            word = word.capitalize()
        return word

    cleaned = _pattern(key).sub(replace, text)
    return Scrubbed(cleaned, tuple(sorted(seen.items())))


def leaked_terms(text: str, terms: Iterable[str]) -> list[str]:
    """The identity terms still present in ``text`` as whole words (any case): what a test asserts empty."""
    key = tuple(sorted({t.casefold() for t in terms if len(t) >= _MIN_TERM}))
    if not key:
        return []
    return sorted({" ".join(m["term"].casefold().split()) for m in _pattern(key).finditer(text)})
