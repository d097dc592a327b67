"""The miner inside the service: one lazily loaded model per process.

Loading torch and the e5 model costs seconds and hundreds of MB, so the worker's
activities and the API's search share one :class:`nlp.pipeline.Miner` per
process (:func:`get_miner`). :func:`embed_statements` reads the pgvector cache
(``peerlearn.mining.store``), encodes only the missing texts and stores them,
so no text is ever encoded twice — by any worker. Search queries go through
:func:`query_embedder`, a small in-process LRU.

Everything here is public on purpose: other modules (the search router, tests,
benchmarks) use these functions, never this module's private state.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from psycopg_pool import AsyncConnectionPool

from nlp.types import EMBEDDING_DIM, NoteIn, Statement
from peerlearn.mining import store
from peerlearn.settings import Settings

if TYPE_CHECKING:  # nlp.pipeline imports torch; keep it out of module import time
    from nlp.pipeline import Miner

_lock = threading.Lock()
_miners: dict[Path, Miner] = {}


def get_miner(settings: Settings) -> Miner:
    """The process-wide miner for the configured model folder (loaded on first use)."""
    path = Path(settings.resolved_model_dir)
    miner = _miners.get(path)
    if miner is not None:
        return miner
    with _lock:
        miner = _miners.get(path)
        if miner is None:
            from nlp.model import ensure_model
            from nlp.pipeline import Miner

            ensure_model(path)
            miner = Miner.from_model_dir(path)
            miner.warm()  # language detector, model, kind prototypes: now, not mid-request
            _warm_lemmas(miner)
            _miners[path] = miner
    return miner


async def get_miner_async(settings: Settings) -> Miner:
    """:func:`get_miner` without blocking the event loop while the model loads."""
    miner = loaded_miner(settings)
    if miner is not None:
        return miner
    return await asyncio.to_thread(get_miner, settings)


def loaded_miner(settings: Settings | None = None) -> Miner | None:
    """The miner already loaded in this process (for ``settings``' model folder, or
    any when ``settings`` is None); None when nothing has loaded one yet."""
    if settings is None:
        return next(iter(_miners.values()), None)
    return _miners.get(Path(settings.resolved_model_dir))


def set_miner(settings: Settings, miner: Miner) -> None:
    """Share an already loaded miner (tests load the model once per session)."""
    _miners[Path(settings.resolved_model_dir)] = miner


# Lemma dictionaries load on a language's first use (seconds each on a busy
# machine); loading the common ones with the model keeps that out of the first
# note in Polish or German.
_WARM_TEXTS = {
    "pl": "Nauczyliśmy się, że regularne spotkania partnerów budują zaufanie.",
    "de": "Wir haben gelernt, dass regelmäßige Treffen der Partner Vertrauen schaffen.",
    "sv": "Vi lärde oss att regelbundna möten mellan partnerna bygger förtroende.",
}


def _warm_lemmas(miner: Miner) -> None:
    notes = [NoteIn(id=f"warm-{k}", text=t, language=k) for k, t in _WARM_TEXTS.items()]
    miner.segment(notes, "note")


# ---- embeddings -------------------------------------------------------------------


def encode_texts(miner: Miner, texts: Sequence[str]) -> np.ndarray:
    """Encode raw texts through the miner's embedder (same prefix and
    normalisation as statements), bypassing its in-memory statement cache: the
    pgvector table is the cache, a second copy per process would only grow."""
    return np.asarray(miner.embedder.encode(list(texts)), dtype=np.float32)


async def embed_statements(
    pool: AsyncConnectionPool, miner: Miner, statements: Sequence[Statement]
) -> tuple[np.ndarray, int]:
    """Embeddings aligned with ``statements`` and how many texts had to be encoded.

    Reads the cache, encodes only missing content hashes (each once, even when a
    text repeats), writes them back.
    """
    if not statements:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32), 0
    hashes = [s.content_hash for s in statements]
    async with pool.connection() as conn:
        found = await store.cached_embeddings(conn, hashes)
    missing: dict[str, Statement] = {}
    for s in statements:
        if s.content_hash not in found and s.content_hash not in missing:
            missing[s.content_hash] = s
    if missing:
        todo = list(missing.values())
        vecs = await asyncio.to_thread(encode_texts, miner, [s.text for s in todo])
        new = {s.content_hash: vecs[i] for i, s in enumerate(todo)}
        async with pool.connection() as conn:
            await store.store_embeddings(conn, new)
            await conn.commit()
        found.update(new)
    out = np.stack([found[h] for h in hashes]).astype(np.float32)
    return out, len(missing)


# ---- query embeddings (search) ------------------------------------------------------


class QueryEmbedder:
    """Encodes search queries once each: an LRU keyed by the normalised query text."""

    def __init__(self, settings: Settings, size: int = 2048) -> None:
        self.settings = settings
        self.size = size
        self._cache: OrderedDict[str, tuple[np.ndarray, str]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[tuple[np.ndarray, str]]] = {}
        self.hits = 0
        self.misses = 0

    async def embed(self, text: str) -> np.ndarray:
        return (await self.embed_with_language(text))[0]

    async def embed_with_language(self, text: str) -> tuple[np.ndarray, str]:
        """The query's vector and its detected language (ISO 639-1), cached."""
        key = " ".join(text.split()).lower()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit
        task = self._pending.get(key)
        if task is None:
            self.misses += 1
            task = self._pending[key] = asyncio.ensure_future(self._compute(key, text))
        else:  # the same new query is being encoded: wait for that one
            self.hits += 1
        # shielded: a caller that goes away does not cancel the others' encoding
        return await asyncio.shield(task)

    async def _compute(self, key: str, text: str) -> tuple[np.ndarray, str]:
        try:
            miner = await get_miner_async(self.settings)

            def work() -> tuple[np.ndarray, str]:
                vec = encode_texts(miner, [text])[0]
                lang = str(miner.langid.detect([text])[0] or "en")
                return vec, lang

            value = await asyncio.to_thread(work)  # encoding never runs on the event loop
        finally:
            self._pending.pop(key, None)
        self._cache[key] = value
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return value


_query_embedders: dict[int, QueryEmbedder] = {}


def query_embedder(settings: Settings) -> QueryEmbedder:
    """The process-wide query embedder for ``settings``."""
    qe = _query_embedders.get(id(settings))
    if qe is None:
        qe = _query_embedders[id(settings)] = QueryEmbedder(settings)
    return qe
