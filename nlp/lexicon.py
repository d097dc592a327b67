"""Lemmas (simplemma) and stop words (spaCy's lists) per language.

Lemmas feed the keyphrases and labels only, never the embeddings, so a cheap
dictionary lemmatiser is enough. Lookups are memoised per (language, word):
statements repeat the same words endlessly.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

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


def _spacy_stop_words(lang: str) -> set[str]:
    """spaCy's stop-word list for ``lang``, read from its file alone.

    Importing ``spacy.lang.<lang>.stop_words`` runs the language package's
    ``__init__`` first (tokenizer exceptions, regex compilation: 7 s for
    French on this machine); the list itself is a plain module with no imports.
    """
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        return set()
    path = Path(next(iter(spec.submodule_search_locations))) / "lang" / lang / "stop_words.py"
    if not re.fullmatch(r"[a-z]{2,3}", lang) or not path.is_file():
        return set()
    fspec = importlib.util.spec_from_file_location(f"_peerlearn_stop_words_{lang}", path)
    if fspec is None or fspec.loader is None:
        return set()
    mod = importlib.util.module_from_spec(fspec)
    fspec.loader.exec_module(mod)
    return {w.lower() for w in getattr(mod, "STOP_WORDS", set())}


@lru_cache(maxsize=64)
def stop_words(lang: str) -> frozenset[str]:
    words = _spacy_stop_words(lang)
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
