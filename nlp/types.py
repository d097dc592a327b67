"""The miner's data types: plain dataclasses, JSON-friendly, no framework.

The service stores these in PostgreSQL and passes them through Temporal, so
every type converts to and from a dict of JSON scalars (``to_dict`` /
``from_dict``); numpy arrays only appear inside ``ThemeModel`` and are written
as nested lists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

#: Every statement kind, the one definition the miner, the store, the API and the report use.
KINDS = ("lesson", "recommendation", "best_practice", "challenge", "success", "other")
#: The kinds that count as a practice (ranked inside a theme, listed in reports).
PRACTICE_KINDS = ("lesson", "recommendation", "best_practice")
#: Width of a multilingual-e5-small sentence embedding; the pgvector columns use it too.
EMBEDDING_DIM = 384


def _from_dict(cls: Any, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class NoteIn:
    """One meeting note (or, in statement mode, one statement) as a partner wrote it."""

    id: str
    text: str
    language: str | None = None  # declared ISO 639-1 code; detection still runs per statement
    programme: str | None = None
    cycle: str | None = None
    meeting: str | None = None
    organisation: str | None = None
    date: str | None = None  # ISO date (YYYY-MM-DD or a longer ISO timestamp)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoteIn:
        return _from_dict(cls, data)


@dataclass
class Statement:
    """One statement segmented out of a note; the unit that is embedded and clustered."""

    id: str  # note id, plus "#k" for the k-th statement in note mode
    source_id: str  # the note's id
    text: str
    language: str  # ISO 639-1
    kind: str  # one of KINDS
    position: int  # 1-based index within the note
    heading: str | None  # the heading the statement sits under, as context
    content_hash: str  # sha256 of the text as embedded: the embedding cache key
    lemmas: list[str] = field(default_factory=list)  # content lemmas, stop words removed
    programme: str | None = None
    cycle: str | None = None
    meeting: str | None = None
    organisation: str | None = None
    date: str | None = None
    kind_score: float = 0.0  # confidence of ``kind`` in [0, 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statement:
        return _from_dict(cls, data)


@dataclass
class ThemeSummary:
    """What a person reads about a theme."""

    id: str
    label: str
    keyphrases: list[str]
    size: int
    languages: dict[str, int]  # statements per language
    representatives: dict[str, list[str]]  # language -> statement ids nearest the centre
    practices: list[dict[str, Any]]  # {"statement_id", "kind", "text", "language"}
    recurrence: dict[str, Any]  # programmes, cycles, organisations, languages, first_seen, ...
    label_language: str = "en"
    representative_texts: dict[str, list[str]] = field(default_factory=dict)
    title: str = ""  # short noun phrase, English when the theme has English (nlp.titles)
    titles: dict[str, str] = field(default_factory=dict)  # language -> title in that language

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThemeSummary:
        return _from_dict(cls, data)


@dataclass
class ThemeChange:
    """How a theme relates to the previous mining run."""

    kind: str  # new | kept | merged | split | retired
    theme_id: str
    from_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThemeChange:
        return _from_dict(cls, data)


@dataclass
class ThemeModel:
    """Everything needed to assign new statements later and to keep ids stable.

    ``centroids`` are unit vectors in the de-biased space; ``language_means``
    are the per-language means removed before clustering (a language not seen
    at mining time falls back to ``global_mean``). ``members`` keeps the
    content hashes of each theme's statements so the next re-mine can match
    themes by member overlap.
    """

    theme_ids: list[str]
    centroids: np.ndarray  # (k, d) float32, unit rows, de-biased space
    language_means: dict[str, np.ndarray]  # language -> (d,) float32
    global_mean: np.ndarray  # (d,)
    threshold: float  # cosine needed to join a theme incrementally
    members: dict[str, list[str]] = field(default_factory=dict)  # theme id -> content hashes
    labels: dict[str, str] = field(default_factory=dict)
    next_id: int = 1
    seed: int = 0
    version: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "theme_ids": list(self.theme_ids),
            "centroids": np.asarray(self.centroids, dtype=np.float32).round(6).tolist(),
            "language_means": {
                k: np.asarray(v, dtype=np.float32).round(6).tolist()
                for k, v in self.language_means.items()
            },
            "global_mean": np.asarray(self.global_mean, dtype=np.float32).round(6).tolist(),
            "threshold": float(self.threshold),
            "members": {k: list(v) for k, v in self.members.items()},
            "labels": dict(self.labels),
            "next_id": int(self.next_id),
            "seed": int(self.seed),
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThemeModel:
        dim = len(data.get("global_mean") or []) or EMBEDDING_DIM
        cents = np.asarray(data.get("centroids") or [], dtype=np.float32).reshape(-1, dim)
        return cls(
            theme_ids=list(data["theme_ids"]),
            centroids=cents,
            language_means={
                k: np.asarray(v, dtype=np.float32)
                for k, v in data.get("language_means", {}).items()
            },
            global_mean=np.asarray(data.get("global_mean") or np.zeros(dim), dtype=np.float32),
            threshold=float(data["threshold"]),
            members={k: list(v) for k, v in data.get("members", {}).items()},
            labels=dict(data.get("labels", {})),
            next_id=int(data.get("next_id", 1)),
            seed=int(data.get("seed", 0)),
            version=int(data.get("version", 1)),
            params=dict(data.get("params", {})),
        )


@dataclass
class MiningResult:
    assignments: list[str | None]  # theme id per input statement, aligned; None = unassigned
    themes: list[ThemeSummary]
    changes: list[ThemeChange]
    model: ThemeModel
    timings: dict[str, float] = field(default_factory=dict)
