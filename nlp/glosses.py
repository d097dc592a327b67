"""English beside every other language: the closest English statement as a gloss.

A funder reading the English report should not meet a Swedish sentence alone.
Without a translation service, the next best help is the English statement
of the same theme that says the most similar thing. It is shown as a
*similar statement*, never as a translation: it may differ in detail.

Similarity is the cosine of language-debiased vectors
(``nlp.practices.practice_vectors``), where a paraphrase in another language
is close and a statement about the same topic saying something else is not.
Measured on ``bench/data/topic_phrasing.jsonl`` (language-debiased):
paraphrase pairs across languages p10 0.54, median 0.68; same topic but a
different idea median 0.37, p90 0.55; the nearest English statement of the
same theme was the paraphrase for 96 of 96 non-English statements (lowest
similarity 0.38). ``GLOSS_SIMILARITY`` = 0.45 keeps most paraphrases and
drops glosses that would only share the topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GLOSS_SIMILARITY = 0.45
GLOSS_LABEL = "similar English statement (not a translation)"


@dataclass(frozen=True)
class Gloss:
    statement_id: str  # the non-English statement
    english_statement_id: str
    english_text: str
    similarity: float  # cosine of the language-debiased vectors, rounded to 3 places
    label: str = GLOSS_LABEL


def english_glosses(
    ids: Sequence[str],
    languages: Sequence[str],
    texts: Sequence[str],
    themes: Sequence[str | None],
    vectors: np.ndarray,
    threshold: float = GLOSS_SIMILARITY,
) -> dict[str, Gloss]:
    """For each non-English statement, the closest English statement of its theme.

    Inputs are aligned; ``vectors`` are language-debiased unit rows. Only pairs
    in the same theme (not None) with cosine ≥ ``threshold`` give a gloss;
    statements without one are simply absent from the result. Ties go to the
    smaller statement id, so the result is deterministic. Pure: no I/O.
    """
    V = np.asarray(vectors, dtype=np.float32)
    by_theme: dict[str, list[int]] = {}
    for i, t in enumerate(themes):
        if t is not None and languages[i] == "en":
            by_theme.setdefault(t, []).append(i)
    out: dict[str, Gloss] = {}
    for i, t in enumerate(themes):
        if t is None or languages[i] == "en" or t not in by_theme:
            continue
        cands = sorted(by_theme[t], key=lambda j: ids[j])
        sims = V[cands] @ V[i]
        best = int(np.argmax(sims))  # the first maximum: the smallest id on ties
        if float(sims[best]) >= threshold:
            j = cands[best]
            out[ids[i]] = Gloss(ids[i], ids[j], texts[j], round(float(sims[best]), 3))
    return out
