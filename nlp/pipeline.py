"""The miner: notes in, themes out. A plain library (no Temporal, no database).

Stages, each a small object behind a narrow Protocol (``nlp.stages``), passed
to ``Miner`` or defaulted: language identifier → segmenter → lemmas
(``nlp.lexicon``) → ``CachedEncoder`` (any ``Embedder``) → debiaser →
clusterer → kind classifier → labeller; then stable ids, representatives,
practices and recurrence (``nlp.themes``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp.cache import CONTENT_TAG, EmbeddingCache, InMemoryCache, content_hash
from nlp.cluster import Clusterer
from nlp.embed import CachedEncoder, Embedder, make_embedder
from nlp.kinds import KindClassifier
from nlp.langid import LanguageIdentifier
from nlp.lexicon import content_lemmas
from nlp.segment import Segmenter
from nlp.stages import (
    ClustererStage,
    DebiaserStage,
    DebiasState,
    KindStage,
    LabellerStage,
    LanguageStage,
    SegmenterStage,
    StatementDebiaser,
    TitleLabeller,
)
from nlp.themes import match_themes, recurrence
from nlp.types import (
    EMBEDDING_DIM,
    PRACTICE_KINDS,
    MiningResult,
    NoteIn,
    Statement,
    ThemeChange,
    ThemeModel,
    ThemeSummary,
)

Progress = Callable[[str, int, int], None]


@dataclass
class MinerConfig:
    """Knobs of the miner. ``granularity`` > 1 gives more, smaller themes; < 1 fewer."""

    granularity: float = 1.0
    min_theme_size: int = 3
    assign_threshold: float | None = None  # cosine to join a theme; None: learnt per mining run
    outlier_threshold: float = 0.05  # cosine below which a statement stays unassigned at mining
    debias_shrink: float = 10.0
    debias_project: bool = False  # measured: plain centring did as well or better on SIB-200
    debias_phrasing: bool = True  # project out the learnt phrasing subspace (nlp.debias)
    debias_kinds: bool = False  # also subtract corpus kind means (measured worse on SIB-200)
    # embedding backend: auto (ONNX fp32 when installed, else torch) | torch | onnx | onnx-int8
    backend: str = "auto"
    batch_size: int = 32
    representatives: int = 3
    practices: int = 10
    keyphrases: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


class Miner:
    """Runs the stages; every stage argument left ``None`` gets its default.

    The defaults are built from ``config`` (granularity, shrink, ...); an
    injected stage is used as given, so its own settings win.
    """

    def __init__(
        self,
        embedder: Embedder | None,
        config: MinerConfig | None = None,
        cache: EmbeddingCache | None = None,
        encoder_factory: Callable[[], Embedder] | None = None,
        *,
        language: LanguageStage | None = None,
        segmenter: SegmenterStage | None = None,
        debiaser: DebiaserStage | None = None,
        clusterer: ClustererStage | None = None,
        kinds: KindStage | None = None,
        labeller: LabellerStage | None = None,
    ) -> None:
        self.config = config or MinerConfig()
        self._embedder = embedder
        self._factory = encoder_factory
        self.cache: EmbeddingCache = cache if cache is not None else InMemoryCache()
        self.langid: LanguageStage = language if language is not None else LanguageIdentifier()
        self.segmenter: SegmenterStage = segmenter if segmenter is not None else Segmenter()
        self.debiaser: DebiaserStage = (
            debiaser
            if debiaser is not None
            else StatementDebiaser(
                self.config.debias_shrink,
                self.config.debias_project,
                kinds=self.config.debias_kinds,
                phrasing=self.config.debias_phrasing,
            )
        )
        self.clusterer: ClustererStage = (
            clusterer
            if clusterer is not None
            else Clusterer(
                granularity=self.config.granularity,
                min_size=self.config.min_theme_size,
                outlier_threshold=self.config.outlier_threshold,
            )
        )
        self.kinds: KindStage = kinds if kinds is not None else KindClassifier(self._encode_raw)
        self.labeller: LabellerStage = (
            labeller if labeller is not None else TitleLabeller(self.config.keyphrases)
        )
        self._encoder: CachedEncoder | None = None
        self.tag = CONTENT_TAG

    @classmethod
    def from_model_dir(
        cls, path: Path, config: MinerConfig | None = None, cache: EmbeddingCache | None = None
    ) -> Miner:
        """The embedder loads lazily: segmenting or assigning cached statements needs no model."""
        config = config or MinerConfig()
        return cls(
            None,
            config,
            cache,
            encoder_factory=lambda: make_embedder(
                Path(path), config.backend, batch_size=config.batch_size
            ),
        )

    # -- embedder -----------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self._factory is None:
                raise RuntimeError("no embedder configured")
            self._embedder = self._factory()
        return self._embedder

    @property
    def encoder(self) -> CachedEncoder:
        if self._encoder is None:
            self._encoder = CachedEncoder(self.embedder, self.cache, tag=self.tag)
        return self._encoder

    def _encode_raw(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(texts))

    def warm(self) -> None:
        """Load everything a first call would (detector, model, prototypes, lemmatiser)."""
        self.langid.warm()
        sts = self.segment([NoteIn(id="warm", text="We learned a lot. Vi lärde oss mycket.")])
        self.classify(sts, self.embed(sts))

    # -- stage 1-3 ------------------------------------------------------------
    def segment(self, notes: Sequence[NoteIn], unit: str = "note") -> list[Statement]:
        """Language id, segmentation, lemmas. ``unit="statement"``: one statement per note.

        Kinds are set in ``mine`` (or ``classify``), once embeddings exist.
        """
        if unit not in ("note", "statement"):
            raise ValueError("unit must be 'note' or 'statement'")
        raw: list[tuple[NoteIn, str, str | None, int]] = []
        for note in notes:
            if unit == "statement":
                text = " ".join(note.text.split())
                if text:
                    raw.append((note, text, None, 1))
                continue
            for seg in self.segmenter.split(note.text, note.language):
                raw.append((note, seg.text, seg.heading, seg.position))
        langs = self.langid.detect([r[1] for r in raw], [r[0].language for r in raw])
        # very short statements with no declaration take their note's majority language
        by_note: dict[str, Counter[str]] = defaultdict(Counter)
        for (note, text, _, _), lang in zip(raw, langs, strict=True):
            if len(text) >= 30:
                by_note[note.id][lang] += 1
        out: list[Statement] = []
        for (note, text, heading, pos), lang in zip(raw, langs, strict=True):
            if len(text) < 30 and not note.language and by_note[note.id]:
                lang = by_note[note.id].most_common(1)[0][0]
            sid = note.id if unit == "statement" else f"{note.id}#{pos}"
            out.append(
                Statement(
                    id=sid,
                    source_id=note.id,
                    text=text,
                    language=lang,
                    kind="other",
                    position=pos,
                    heading=heading,
                    content_hash=content_hash(text, self.tag),
                    lemmas=content_lemmas(text, lang) if self.labeller.needs_lemmas else [],
                    programme=note.programme,
                    cycle=note.cycle,
                    meeting=note.meeting,
                    organisation=note.organisation,
                    date=note.date,
                )
            )
        return out

    def classify(self, statements: Sequence[Statement], embeddings: np.ndarray | None) -> None:
        """Set ``kind`` and ``kind_score`` in place."""
        res = self.kinds.classify(
            [s.text for s in statements], [s.language for s in statements], embeddings
        )
        for s, (kind, score) in zip(statements, res, strict=True):
            s.kind, s.kind_score = kind, score

    # -- stage 4 ------------------------------------------------------------------
    def embed(
        self, statements: Sequence[Statement], progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        if not statements:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.encoder.encode(
            [s.text for s in statements],
            keys=[s.content_hash for s in statements],
            progress=progress,
        )

    # -- stage 5-11 -----------------------------------------------------------
    def mine(
        self,
        statements: Sequence[Statement],
        embeddings: np.ndarray | None = None,
        previous: ThemeModel | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> MiningResult:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        statements = list(statements)
        if embeddings is None:
            embeddings = self.embed(
                statements, progress=(lambda d, n: progress("embed", d, n)) if progress else None
            )
        X = np.asarray(embeddings, dtype=np.float32)
        timings["embed"] = time.perf_counter() - t0
        if len(statements) != len(X):
            raise ValueError("statements and embeddings differ in length")
        t = time.perf_counter()
        if any(s.kind == "other" and s.kind_score == 0.0 for s in statements):
            self.classify(statements, X)
        timings["kinds"] = time.perf_counter() - t
        if progress:
            progress("cluster", 0, 1)
        t = time.perf_counter()
        state = self.debiaser.fit(X, statements)
        Y = self.debiaser.transform(X, statements, state)
        labels, centroids = self.clusterer.fit(Y, seed=seed)
        timings["cluster"] = time.perf_counter() - t
        t = time.perf_counter()
        clusters = [np.flatnonzero(labels == c).tolist() for c in range(len(centroids))]
        hashes = [s.content_hash for s in statements]
        if previous is not None:
            ids, changes, next_id = match_themes(
                clusters,
                hashes,
                centroids,
                previous.theme_ids,
                previous.members,
                previous.centroids,
                previous.next_id,
            )
        else:
            ids = [f"T{i + 1:04d}" for i in range(len(clusters))]
            changes = [ThemeChange("new", i, []) for i in ids]
            next_id = len(ids) + 1
        assignments: list[str | None] = [None] * len(statements)
        for cid, members in zip(ids, clusters, strict=True):
            for i in members:
                assignments[i] = cid
        themes = self._summaries(statements, Y, clusters, ids, centroids)
        order = sorted(range(len(themes)), key=lambda i: (-themes[i].size, themes[i].id))
        model = ThemeModel(
            theme_ids=[ids[i] for i in order],
            centroids=np.asarray(centroids, dtype=np.float32)[order]
            if len(order)
            else np.zeros((0, X.shape[1] if X.ndim == 2 else EMBEDDING_DIM), np.float32),
            language_means=state.language_means,
            global_mean=state.global_mean,
            threshold=self._threshold(Y, labels, centroids),
            members={ids[i]: [hashes[j] for j in clusters[i]] for i in order},
            labels={t.id: t.label for t in themes},
            next_id=next_id,
            seed=seed,
            params={
                "granularity": self.config.granularity,
                "project": state.project,
                "tag": self.tag,
                **({"debias": state.params()} if state.extra else {}),
            },
        )
        timings["themes"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        if progress:
            progress("cluster", 1, 1)
        return MiningResult(
            assignments=assignments,
            themes=[themes[i] for i in order],
            changes=changes,
            model=model,
            timings=timings,
        )

    def _threshold(self, Y: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
        """The similarity a new statement needs: the 10th percentile of members' own similarity."""
        if self.config.assign_threshold is not None:
            return float(self.config.assign_threshold)
        m = labels >= 0
        if not m.any():
            return 0.3
        own = (Y[m] * centroids[labels[m]]).sum(1)
        return float(max(0.05, np.percentile(own, 10)))

    def _summaries(
        self,
        statements: list[Statement],
        Y: np.ndarray,
        clusters: list[list[int]],
        ids: list[str],
        centroids: np.ndarray,
    ) -> list[ThemeSummary]:
        cfg = self.config
        texts = self.labeller.describe(statements, clusters)
        out: list[ThemeSummary] = []
        for ci, (cid, members) in enumerate(zip(ids, clusters, strict=True)):
            sts = [statements[i] for i in members]
            langs = Counter(s.language for s in sts)
            sims = Y[members] @ centroids[ci] if members else np.zeros(0)
            reps: dict[str, list[str]] = {}
            rep_texts: dict[str, list[str]] = {}
            for lang in sorted(langs):
                idx = [j for j, s in enumerate(sts) if s.language == lang]
                idx.sort(key=lambda j: (-float(sims[j]), sts[j].id))
                reps[lang] = [sts[j].id for j in idx[: cfg.representatives]]
                rep_texts[lang] = [sts[j].text for j in idx[: cfg.representatives]]
            prac = sorted(
                (j for j, s in enumerate(sts) if s.kind in PRACTICE_KINDS),
                key=lambda j: (-(sts[j].kind_score + float(sims[j])), sts[j].id),
            )[: cfg.practices]
            out.append(
                ThemeSummary(
                    id=cid,
                    label=texts[ci].label,
                    keyphrases=texts[ci].keyphrases,
                    size=len(sts),
                    languages=dict(sorted(langs.items())),
                    representatives=reps,
                    practices=[
                        {
                            "statement_id": sts[j].id,
                            "kind": sts[j].kind,
                            "text": sts[j].text,
                            "language": sts[j].language,
                        }
                        for j in prac
                    ],
                    recurrence=recurrence(sts),
                    label_language=texts[ci].label_language,
                    title=texts[ci].title,
                    titles=texts[ci].titles,
                    representative_texts=rep_texts,
                )
            )
        return out

    # -- incremental ------------------------------------------------------------
    def assign(
        self, statements: Sequence[Statement], embeddings: np.ndarray | None, model: ThemeModel
    ) -> list[str | None]:
        """Nearest existing theme above ``model.threshold``; None waits for the next re-mine."""
        if not statements:
            return []
        if embeddings is None:
            embeddings = self.embed(statements)
        if not len(model.theme_ids):
            return [None] * len(statements)
        state = DebiasState.from_model(
            model.language_means, model.global_mean, model.params, self.config.debias_project
        )
        if "kind_offsets" in state.extra and any(
            s.kind == "other" and s.kind_score == 0.0 for s in statements
        ):
            self.classify(statements, np.asarray(embeddings, np.float32))
        Y = self.debiaser.transform(np.asarray(embeddings, np.float32), statements, state)
        sims = Y @ np.asarray(model.centroids, dtype=np.float32).T
        best = sims.argmax(1)
        return [
            model.theme_ids[b] if sims[i, b] >= model.threshold else None
            for i, b in enumerate(best)
        ]
