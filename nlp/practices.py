"""Practices: lessons, recommendations and best practices ranked inside a theme.

A practice is worth more when independent partners say the same thing: its
support is the set of practice statements of the same theme close to it in
meaning (any language), and its score counts the distinct cycles and
organisations among them. Recommendations also get an audience (future
partnerships, the organisations themselves, funders) from per-language cues,
which is how programmes group the recommendations of a wrap-up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nlp.types import PRACTICE_KINDS

SUPPORT_SIMILARITY = 0.86  # raw e5 cosine; paraphrases across languages sit above it
AUDIENCES = ("future_partnerships", "organisations", "funders")
__all__ = ["PRACTICE_KINDS", "Practice", "group_practices", "practice_vectors", "rank_practices"]

_FUNDER_CUES = {
    "en": r"fund(er|ers|ing)|grant|donor|programme authorit|managing authorit|financ|budget"
    r"|ministr|call for proposals|interreg",
    "sv": r"finansi|bidrag|anslag|vinnova|tillväxtverket|myndighet|budget|utlysning|stöd(et|)\b",
    "pl": r"finansow|grant|dotacj|fundusz|budżet|ministerstw|instytucj\w* zarządzając|nabór"
    r"|sponsor",
    "de": r"förder|finanzier|geldgeber|zuschuss|budget|ministerium|ausschreibung",
}
_ORG_CUES = {
    "en": r"\b(our|each|every|the)\s+(own\s+)?(cluster|organisation|organization|member|team"
    r"|staff|city|agency)|internally|in-house|cluster managers?",
    "sv": r"\b(vår|vårt|våra|varje|egna?)\b|klusterorganisation|medlemsföretag|internt"
    r"|klusterledare",
    "pl": r"\b(nasz|nasza|nasze|każd|własn)\w*|wewnątrz|organizacj\w* klastr|członk",
    "de": r"\b(unser|jede|eigene)\w*|intern|clustermanag|mitglied",
}
_FUTURE_CUES = {
    "en": r"future|next (cycle|partnership|project|time)|partners? should|peer review|visit",
    "sv": r"framtid|nästa|partner|kommande|studiebesök",
    "pl": r"przysz|następn|partner|kolejn|wizyt",
    "de": r"zukünftig|nächst|partner|besuch",
}


def _score(text: str, cues: dict[str, str], language: str) -> int:
    pats = [cues[language]] if language in cues else list(cues.values())
    low = text.lower()
    return sum(len(re.findall(p, low)) for p in pats)


def audience_of(text: str, language: str) -> str:
    """Who a recommendation is for; future partnerships when nothing says otherwise."""
    funders = _score(text, _FUNDER_CUES, language)
    orgs = _score(text, _ORG_CUES, language)
    future = _score(text, _FUTURE_CUES, language)
    if funders and funders >= orgs:
        return "funders"
    if orgs > future:
        return "organisations"
    return "future_partnerships"


@dataclass
class PracticeRow:
    statement_id: str
    theme_id: str
    kind: str
    audience: str
    support_statements: list[str] = field(default_factory=list)
    support_cycles: int = 1
    support_organisations: int = 1
    score: float = 0.0
    rank: int = 0


def rank_practices(
    theme_id: str,
    ids: Sequence[str],
    kinds: Sequence[str],
    texts: Sequence[str],
    languages: Sequence[str],
    cycles: Sequence[str | None],
    organisations: Sequence[str | None],
    embeddings: np.ndarray,
) -> list[PracticeRow]:
    """Rank the practice statements of one theme (inputs are aligned arrays)."""
    n = len(ids)
    if n == 0:
        return []
    emb = np.asarray(embeddings, dtype=np.float32)
    sims = emb @ emb.T
    centre = emb.mean(axis=0)
    norm = float(np.linalg.norm(centre)) or 1.0
    centrality = emb @ (centre / norm)
    rows: list[PracticeRow] = []
    for i in range(n):
        members: list[int] = np.flatnonzero(sims[i] >= SUPPORT_SIMILARITY).tolist()
        cyc = {cycles[j] or f"?{j}" for j in members}
        org = {organisations[j] or f"?{j}" for j in members}
        score = len(cyc) + len(org) + 0.1 * len(members) + float(centrality[i])
        if kinds[i] == "best_practice":
            score += 0.25
        rows.append(
            PracticeRow(
                statement_id=ids[i],
                theme_id=theme_id,
                kind=kinds[i],
                audience=audience_of(texts[i], languages[i]),
                support_statements=[ids[j] for j in members],
                support_cycles=len(cyc),
                support_organisations=len(org),
                score=round(score, 4),
            )
        )
    rows.sort(key=lambda r: (-r.score, r.statement_id))
    for k, r in enumerate(rows, 1):
        r.rank = k
    return rows


# --------------------------------------------------------------------------- one idea, one practice

#: Cosine (language-debiased vectors) at which two statements say the same thing.
#: Measured on bench/data/topic_phrasing.jsonl (same topic and kind in another
#: language = paraphrase; same topic, other kind = a different idea): paraphrase
#: pairs p10 0.54, median 0.68; different-idea pairs median 0.37, p90 0.55;
#: the best cut was 0.56 (raw e5 vectors separate worse: best cut 0.90, F1 0.82 vs 0.89).
PARAPHRASE_SIMILARITY = 0.56


@dataclass
class Practice:
    """One idea inside a theme, however many times and languages it was written in.

    ``id`` is stable: derived from the sorted member statement ids, so the same
    members give the same id on every run. ``title`` is the English wording
    when there is one, else the wording in the most-used language.
    ``wordings`` holds one wording per language (the member nearest the
    group's centre). Support counts distinct organisations and cycles among
    the members (a member without one counts as its own).
    """

    id: str
    kind: str
    title: str
    title_language: str
    wordings: dict[str, str]
    statement_ids: list[str]
    support_organisations: int
    support_cycles: int
    organisations: list[str] = field(default_factory=list)
    cycles: list[str] = field(default_factory=list)
    score: float = 0.0


def practice_vectors(
    embeddings: np.ndarray,
    languages: Sequence[str],
    language_means: dict[str, np.ndarray] | None = None,
    global_mean: np.ndarray | None = None,
) -> np.ndarray:
    """Language-debiased unit vectors for ``group_practices`` and ``nlp.glosses``.

    With a mined ``ThemeModel``'s ``language_means``/``global_mean`` the
    miner's own means are reused (recommended: estimated on the whole scope);
    without, the means are estimated on the given statements.
    """
    from nlp.debias import LanguageDebiaser, remove_group_means

    if language_means is None or global_mean is None:
        return remove_group_means(embeddings, languages)
    return LanguageDebiaser().transform(
        embeddings, languages, language_means, global_mean, project=False
    )


def practice_id(statement_ids: Sequence[str]) -> str:
    """``P`` + 12 hex digits of the SHA-256 of the sorted member ids."""
    import hashlib

    raw = "\x00".join(sorted(statement_ids)).encode()
    return "P" + hashlib.sha256(raw).hexdigest()[:12]


def group_practices(
    ids: Sequence[str],
    kinds: Sequence[str],
    texts: Sequence[str],
    languages: Sequence[str],
    organisations: Sequence[str | None],
    cycles: Sequence[str | None],
    vectors: np.ndarray,
    threshold: float = PARAPHRASE_SIMILARITY,
) -> list[Practice]:
    """Group one theme's practice statements into ideas (inputs are aligned).

    Pass only the statements to consider (usually those whose kind is in
    ``nlp.types.PRACTICE_KINDS``) and their language-debiased unit vectors
    (``practice_vectors``). Statements join one practice by average-linkage
    agglomeration cut at cosine ``threshold``, so every member is on average
    at least that close to the others, in any language. Returned best first:
    distinct organisations + distinct cycles + 0.1 per member, ties by id.
    Pure: no I/O, deterministic.
    """
    n = len(ids)
    if n == 0:
        return []
    V = np.asarray(vectors, dtype=np.float64)
    if n == 1:
        labels = np.zeros(1, dtype=np.int64)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = (
            AgglomerativeClustering(
                n_clusters=None,
                distance_threshold=1.0 - threshold,
                metric="cosine",
                linkage="average",
            )
            .fit(V)
            .labels_
        )
    out: list[Practice] = []
    for c in sorted(set(labels.tolist())):
        members = sorted(np.flatnonzero(labels == c).tolist(), key=lambda i: ids[i])
        centre = V[members].mean(0)
        near = {i: float(V[i] @ centre) for i in members}
        wordings: dict[str, str] = {}
        for lang in sorted({languages[i] for i in members}):
            best = max(
                (i for i in members if languages[i] == lang), key=lambda i: (near[i], ids[i])
            )
            wordings[lang] = texts[best]
        langs = Counter(languages[i] for i in members)
        title_lang = "en" if "en" in wordings else min(langs, key=lambda lg: (-langs[lg], lg))
        kc = Counter(kinds[i] for i in members)
        kind = min(kc, key=lambda k: (-kc[k], _KIND_ORDER.get(k, 99), k))
        orgs = sorted({organisations[i] or f"?{ids[i]}" for i in members})
        cyc = sorted({cycles[i] or f"?{ids[i]}" for i in members})
        out.append(
            Practice(
                id=practice_id([ids[i] for i in members]),
                kind=kind,
                title=wordings[title_lang],
                title_language=title_lang,
                wordings=wordings,
                statement_ids=[ids[i] for i in members],
                support_organisations=len(orgs),
                support_cycles=len(cyc),
                organisations=[o for o in orgs if not o.startswith("?")],
                cycles=[c for c in cyc if not c.startswith("?")],
                score=round(len(orgs) + len(cyc) + 0.1 * len(members), 4),
            )
        )
    out.sort(key=lambda p: (-p.score, p.id))
    return out


_KIND_ORDER = {"best_practice": 0, "lesson": 1, "recommendation": 2}
