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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SUPPORT_SIMILARITY = 0.86  # raw e5 cosine; paraphrases across languages sit above it
AUDIENCES = ("future_partnerships", "organisations", "funders")

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
