"""The miner inside the service: one lazily loaded model per process, vectors in pgvector.

Loading torch and the e5 model costs seconds and hundreds of MB, so the worker's
activities and the API's search share one :class:`nlp.pipeline.Miner` per
process (:func:`get_miner`). Embeddings are cached in the ``embeddings`` table by
content hash: :func:`embed_statements` reads what is there, encodes only the
missing texts and stores them, so no text is ever encoded twice — by any worker.
Query embeddings for search are kept in a small in-process LRU.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from peerlearn.settings import Settings

if TYPE_CHECKING:  # nlp imports torch; keep it out of module import time
    from nlp.pipeline import Miner

DIM = 384
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
            warm = getattr(miner, "warm", None)
            if callable(warm):  # language detector, model, kind prototypes: now, not mid-request
                warm()
            _warm_lemmas(miner)
            _miners[path] = miner
    return miner


# Lemma dictionaries load on a language's first use (seconds each on a busy
# machine); loading the common ones with the model keeps that out of the first
# note in Polish or German.
_WARM_TEXTS = {
    "pl": "Nauczyliśmy się, że regularne spotkania partnerów budują zaufanie.",
    "de": "Wir haben gelernt, dass regelmäßige Treffen der Partner Vertrauen schaffen.",
    "sv": "Vi lärde oss att regelbundna möten mellan partnerna bygger förtroende.",
}


def _warm_lemmas(miner: Miner) -> None:
    from peerlearn.nlp_adapter import make_note

    notes = [make_note(id=f"warm-{k}", text=t, language=k) for k, t in _WARM_TEXTS.items()]
    miner.segment(notes, "note")


def set_miner(settings: Settings, miner: Miner) -> None:
    """Share an already loaded miner (tests load the model once per session)."""
    _miners[Path(settings.resolved_model_dir)] = miner


async def get_miner_async(settings: Settings) -> Miner:
    path = Path(settings.resolved_model_dir)
    if path in _miners:
        return _miners[path]
    return await asyncio.to_thread(get_miner, settings)


# ---- the embedding cache -------------------------------------------------------


def _as_array(v: Any) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v.astype(np.float32, copy=False)
    if hasattr(v, "to_numpy"):
        return np.asarray(v.to_numpy(), dtype=np.float32)
    return np.asarray(v, dtype=np.float32)


class PgEmbeddingCache:
    """:class:`nlp.cache.EmbeddingCache` on the ``embeddings`` table (sync, for the CLI
    and for ``Miner(cache=...)``); the async service path uses :func:`cached_embeddings`."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def _connect(self) -> psycopg.Connection[Any]:
        from pgvector.psycopg import register_vector

        conn = psycopg.connect(self.conninfo, autocommit=True)
        register_vector(conn)
        return conn

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(dict.fromkeys(hashes))
        if not keys:
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT content_hash, embedding FROM embeddings WHERE content_hash = ANY(%s)",
                (keys,),
            ).fetchall()
        return {r[0]: _as_array(r[1]) for r in rows}

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embeddings (content_hash, embedding) VALUES (%s, %s)"
                " ON CONFLICT (content_hash) DO NOTHING",
                [(h, _as_array(v)) for h, v in items.items()],
            )


async def cached_embeddings(
    conn: psycopg.AsyncConnection[Any], hashes: Sequence[str]
) -> dict[str, np.ndarray]:
    keys = list(dict.fromkeys(hashes))
    if not keys:
        return {}
    async with conn.cursor(row_factory=dict_row, binary=True) as cur:
        await cur.execute(
            "SELECT content_hash, embedding FROM embeddings WHERE content_hash = ANY(%s)", (keys,)
        )
        rows = await cur.fetchall()
    return {r["content_hash"]: _as_array(r["embedding"]) for r in rows}


async def store_embeddings(
    conn: psycopg.AsyncConnection[Any], items: dict[str, np.ndarray]
) -> None:
    if not items:
        return
    # one pipelined batch (psycopg sends every row before reading any answer);
    # sorted keys keep concurrent writers from deadlocking on the unique index
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO embeddings (content_hash, embedding) VALUES (%s, %s)"
            " ON CONFLICT (content_hash) DO NOTHING",
            [(h, _as_array(items[h])) for h in sorted(items)],
        )


async def embed_statements(
    pool: AsyncConnectionPool, miner: Miner, statements: Sequence[Any]
) -> tuple[np.ndarray, int]:
    """Embeddings aligned with ``statements`` and how many texts had to be encoded.

    Reads the cache, encodes only missing content hashes (each once, even when a
    text repeats), writes them back.
    """
    if not statements:
        return np.zeros((0, DIM), dtype=np.float32), 0
    hashes = [s.content_hash for s in statements]
    async with pool.connection() as conn:
        found = await cached_embeddings(conn, hashes)
    missing: dict[str, Any] = {}
    for s in statements:
        if s.content_hash not in found and s.content_hash not in missing:
            missing[s.content_hash] = s
    if missing:
        todo = list(missing.values())
        # straight to the encoder (off the event loop): the miner's own in-memory
        # cache would only keep a second copy of every vector for the process' life
        vecs = await asyncio.to_thread(encode_texts, miner, [s.text for s in todo])
        new = {s.content_hash: vecs[i] for i, s in enumerate(todo)}
        async with pool.connection() as conn:
            await store_embeddings(conn, new)
            await conn.commit()
        found.update(new)
    out = np.stack([found[h] for h in hashes]).astype(np.float32)
    return out, len(missing)


# ---- query embeddings (search) ---------------------------------------------------


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
                lang = "en"
                langid = getattr(miner, "langid", None)
                if langid is not None:
                    lang = str(langid.detect([text])[0] or "en")
                return vec, lang

            value = await asyncio.to_thread(work)  # encoding never runs on the event loop
        finally:
            self._pending.pop(key, None)
        self._cache[key] = value
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return value


def encode_texts(miner: Miner, texts: Sequence[str]) -> np.ndarray:
    """Encode raw texts through the miner's embedder (same prefix and
    normalisation as statements), bypassing its statement cache."""
    embedder = getattr(miner, "embedder", None)
    if embedder is not None and hasattr(embedder, "encode"):
        return np.asarray(embedder.encode(list(texts)), dtype=np.float32)
    from nlp.types import Statement
    from peerlearn.nlp_adapter import make_statement

    stmts: list[Statement] = [
        make_statement(id=f"q{i}", source_id=f"q{i}", text=t, position=i)
        for i, t in enumerate(texts)
    ]
    return np.asarray(miner.embed(stmts), dtype=np.float32)


_query_embedders: dict[int, QueryEmbedder] = {}


def query_embedder(settings: Settings) -> QueryEmbedder:
    qe = _query_embedders.get(id(settings))
    if qe is None:
        qe = _query_embedders[id(settings)] = QueryEmbedder(settings)
    return qe
