"""Lemmas (simplemma) and stop words (spaCy's lists) per language.

Lemmas feed the keyphrases and labels only, never the embeddings, so a cheap
dictionary lemmatiser is enough. Lookups are memoised per (language, word):
statements repeat the same words endlessly.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache

_TOKEN = re.compile(r"[^\W\d_](?:[\w'’-]*[^\W\d_])?", re.UNICODE)

# simplemma's language codes for our ISO 639-1 codes (most are identical)
_SIMPLEMMA = {"nn": "nb", "no": "nb"}
# extra function words frequent in meeting notes that spaCy's lists lack
_EXTRA_STOP = {
    "en": {
        "also",
        "would",
        "could",
        "should",
        "might",
        "must",
        "will",
        "shall",
        "us",
        "etc",
        "e.g",
        "i.e",
    },
    "sv": {"även", "också", "ska", "skulle", "kunde", "bör", "måste", "mm", "bl.a", "t.ex"},
    "pl": {
        "też",
        "także",
        "należy",
        "trzeba",
        "będzie",
        "może",
        "mogą",
        "np",
        "itp",
        "itd",
        "m.in",
    },
    "de": {"auch", "sollte", "sollten", "müssen", "muss", "kann", "können", "z.b", "usw", "bzw"},
    "fr": {"aussi", "doit", "doivent", "peut", "peuvent", "etc"},
    "et": {"ka", "peaks", "võiks", "saab", "tuleb", "jne"},
}


@lru_cache(maxsize=64)
def stop_words(lang: str) -> frozenset[str]:
    words: set[str] = set()
    try:
        mod = importlib.import_module(f"spacy.lang.{lang}.stop_words")
        words = {w.lower() for w in mod.STOP_WORDS}
    except (ImportError, AttributeError):
        pass
    words |= _EXTRA_STOP.get(lang, set())
    return frozenset(words)


@lru_cache(maxsize=200_000)
def lemma(word: str, lang: str) -> str:
    import simplemma

    code = _SIMPLEMMA.get(lang, lang)
    try:
        return str(simplemma.lemmatize(word, lang=code)).lower()
    except (ValueError, KeyError):
        return word.lower()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def content_lemmas(text: str, lang: str, min_len: int = 3) -> list[str]:
    """Lemmas of the content words of ``text`` (stop words, numbers and short tokens dropped)."""
    stops = stop_words(lang)
    out: list[str] = []
    for tok in tokens(text):
        low = tok.lower()
        if len(low) < min_len or low in stops:
            continue
        lem = lemma(low, lang)
        if len(lem) < min_len or lem in stops:
            continue
        out.append(lem)
    return out
