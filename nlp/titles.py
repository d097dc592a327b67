"""Readable theme titles and keyphrases from surface n-grams (no lemma lists).

A title is a short phrase that several statements of a theme share, in the
words people wrote ("free energy audits", "staff turnover"), not a list of
dictionary forms ("catch, dedicate, hybrid"). Per language:

1. candidates are word n-grams (1–5 words) of the statements that neither
   start nor end with a stop word (so "audits for small firms" is one, "for
   small" is not);
2. n-grams are matched across statements by a light key (lower-cased, a
   plural ``s`` dropped, each word cut to its first 6 letters), so "audyty"
   and "audytów", "firm" and "firms" count together; the phrase shown is the
   surface form seen most often;
3. weight = class-based TF-IDF (share of the theme's statements containing
   it × ``log(1 + average / count over all themes)``) × √(words): a phrase
   every theme uses ("we recommend") scores low, a longer phrase shared by
   as many statements beats its parts.

The title is the best phrase of two or more words found in at least two
statements (one statement: its best phrase); English when the theme has
English statements. No model, no lemmatiser: cheap enough to run per theme.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from nlp.lexicon import stop_words

_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*[^\W\d_])?", re.UNICODE)
_MAX_N = 5

# phrasing words that carry a statement's kind, never its topic
_PHRASING = {
    "en": {"recommend", "recommended", "learned", "learnt", "lesson", "lessons", "suggest"},
    "de": {"empfehlen", "gelernt", "lektion"},
    "sv": {"rekommenderar", "lärde", "lärdom"},
    "pl": {"zalecamy", "polecamy", "nauczyliśmy"},
    "fr": {"recommandons", "appris"},
}


@dataclass
class ThemeTitles:
    """What a reader sees for one theme."""

    title: str  # English when the theme has English statements, else its main language
    title_language: str
    titles: dict[str, str] = field(default_factory=dict)  # language -> title in it
    keyphrases: list[str] = field(default_factory=list)  # surface phrases, all languages


def _key(word: str) -> str:
    w = word.lower().replace("’", "'")
    if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w[:6]


def _ngrams(text: str, lang: str) -> list[tuple[tuple[str, ...], str, bool]]:
    """(key, surface, multiword) of every candidate n-gram in ``text``."""
    stops = stop_words(lang) | _PHRASING.get(lang, set())
    words = [(m.group(0), m.start()) for m in _WORD.finditer(text)]
    out = []
    for i in range(len(words)):
        if words[i][0].lower() in stops or len(words[i][0]) < 3:
            continue
        for n in range(1, _MAX_N + 1):
            j = i + n - 1
            if j >= len(words):
                break
            last = words[j][0]
            if n > 1 and words[j - 1][1] + len(words[j - 1][0]) < words[j][1] - 1:
                break  # punctuation between the words: not one phrase
            gap = text[words[j - 1][1] + len(words[j - 1][0]) : words[j][1]] if n > 1 else " "
            if n > 1 and gap.strip():
                break
            if last.lower() in stops or len(last) < 3:
                continue
            toks = [w for w, _ in words[i : j + 1]]
            if all(t.lower() in stops for t in toks):
                continue
            surface = " ".join(
                t if (k > 0 or i > 0) and t[:1].isupper() else t.lower() for k, t in enumerate(toks)
            )
            out.append((tuple(_key(t) for t in toks), surface, n > 1))
    return out


def _display(forms: Counter[str]) -> str:
    """The most frequent surface form; ties: the shortest, then alphabetical."""
    return min(forms.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0]


def theme_titles(
    themes: Sequence[Sequence[tuple[str, str]]], keyphrases: int = 8
) -> list[ThemeTitles]:
    """Titles and keyphrases for each theme from its ``(language, text)`` statements.

    All themes are passed together: a phrase's weight in one theme is judged
    against its use in the others (per language). Returns one ``ThemeTitles``
    per theme, aligned with ``themes``.
    """
    langs = sorted({lg for th in themes for lg, _ in th})
    # per language: theme -> key -> statements containing it; key -> surface forms
    df: dict[str, list[Counter[tuple[str, ...]]]] = {}
    forms: dict[str, dict[tuple[str, ...], Counter[str]]] = {}
    for lg in langs:
        df[lg] = []
        forms[lg] = defaultdict(Counter)
        for th in themes:
            c: Counter[tuple[str, ...]] = Counter()
            for slg, text in th:
                if slg != lg:
                    continue
                seen = set()
                for key, surface, _ in _ngrams(text, lg):
                    forms[lg][key][surface] += 1
                    seen.add(key)
                c.update(seen)
            df[lg].append(c)
    out: list[ThemeTitles] = []
    for ti, th in enumerate(themes):
        counts = Counter(lg for lg, _ in th)
        titles: dict[str, str] = {}
        ranked: dict[str, list[str]] = {}
        for lg in sorted(counts, key=lambda x: (-counts[x], x)):
            ranked[lg], title = _rank(df[lg], forms[lg], ti, counts[lg])
            if title:
                titles[lg] = title
        if "en" in titles:
            main = "en"
        else:
            main = next(
                (lg for lg in sorted(counts, key=lambda x: (-counts[x], x)) if lg in titles), ""
            )
        keys: list[str] = []
        order = sorted(ranked, key=lambda x: (-counts[x], x))
        for i in range(keyphrases):
            for lg in order:
                if i < len(ranked[lg]) and ranked[lg][i] not in keys:
                    keys.append(ranked[lg][i])
        title = titles.get(main, "")
        out.append(
            ThemeTitles(
                title=(title[:1].upper() + title[1:]) if title else "(untitled)",
                title_language=main or (counts.most_common(1)[0][0] if counts else "en"),
                titles={lg: t[:1].upper() + t[1:] for lg, t in titles.items()},
                keyphrases=keys[:keyphrases],
            )
        )
    return out


def _rank(
    per_theme: list[Counter[tuple[str, ...]]],
    forms: dict[tuple[str, ...], Counter[str]],
    ti: int,
    n_statements: int,
) -> tuple[list[str], str]:
    """Keyphrases (best first, no phrase inside a better one) and the title of theme ``ti``."""
    total: Counter[tuple[str, ...]] = Counter()
    for c in per_theme:
        total.update(c)
    avg = sum(sum(c.values()) for c in per_theme) / max(1, sum(1 for c in per_theme if c))
    mine = per_theme[ti]
    need = 2 if n_statements >= 2 else 1
    scored = []
    for key, cnt in mine.items():
        if cnt < need or (cnt < 2 and len(key) > 3):
            continue
        w = (cnt / n_statements) * math.log(1 + avg / total[key]) * math.sqrt(len(key))
        scored.append((w, key))
    scored.sort(key=lambda x: (-x[0], x[1]))
    chosen: list[tuple[str, ...]] = []
    for _, key in scored:
        if any(_inside(key, c) or _inside(c, key) for c in chosen):
            continue
        chosen.append(key)
        if len(chosen) >= 12:
            break
    phrases = [_display(forms[k]) for k in chosen]
    multi = [k for k in chosen if len(k) > 1 and mine[k] >= 2]
    if multi:
        return phrases, _display(forms[multi[0]])
    # no phrase shared by two statements: a short phrase (2-3 words) of rare words,
    # around the best keyword when there is one, rather than a single word
    singles = [k for _, k in scored if len(k) == 1]
    anchor = singles[0] if singles else None

    def shared_then_rare(key: tuple[str, ...]) -> tuple[float, float]:
        """Words the theme's statements share first, then words rare elsewhere."""
        inside = [mine.get((w,), 0) for w in key if (w,) in total]
        rare = [math.log(1 + avg / max(1, total[(w,)])) for w in key if (w,) in total]
        if not inside:
            return (0.0, 0.0)
        return (sum(inside) / len(inside), sum(rare) / len(rare) * math.sqrt(len(key)))

    short = [k for k in mine if 2 <= len(k) <= 3 and (anchor is None or _inside(anchor, k))]
    if short:
        best = max(short, key=lambda k: (*shared_then_rare(k), k))
        return phrases, _display(forms[best])
    return phrases, phrases[0] if phrases else ""


def _inside(small: tuple[str, ...], big: tuple[str, ...]) -> bool:
    n = len(small)
    return n <= len(big) and any(big[i : i + n] == small for i in range(len(big) - n + 1))
