"""Embedding caches keyed by a statement's content hash.

Encoding is the only expensive step of mining, so a re-mine must not encode a
statement it has seen. The miner talks to this narrow protocol; the service
implements it on pgvector, the CLI uses ``FileCache``, tests ``InMemoryCache``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class EmbeddingCache(Protocol):
    def get_many(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes`` (missing ones are simply absent)."""
        ...

    def put_many(self, items: dict[str, np.ndarray]) -> None: ...


#: The embedding cache's model tag: multilingual-e5-small, ``query:`` prefix, version 1.
#: It is part of every stored content hash (databases hold it): change it only
#: when the model or the prefix changes, which invalidates every cached vector.
CONTENT_TAG = "e5s-q1"


def content_hash(text: str, model_tag: str = CONTENT_TAG) -> str:
    """Key of one text as embedded; the tag changes when the model or prefix does."""
    return hashlib.sha256(f"{model_tag}\x00{text}".encode()).hexdigest()


class InMemoryCache:
    def __init__(self) -> None:
        self._data: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def get_many(self, hashes: list[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return {h: self._data[h] for h in hashes if h in self._data}

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            for h, v in items.items():
                self._data[h] = np.asarray(v, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._data)


class FileCache:
    """Append-only shards of ``.npz`` under a folder, loaded once into memory.

    Each ``put_many`` writes one new shard atomically (temp file + rename), so
    concurrent writers never corrupt each other and a crash loses at most the
    shard being written.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._mem = InMemoryCache()
        self._loaded: set[str] = set()
        self._refresh()

    def _refresh(self) -> None:
        for shard in sorted(self.dir.glob("*.npz")):
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard) as z:
                    keys = [str(k) for k in z["keys"]]
                    vecs = z["vecs"].astype(np.float32)
            except (OSError, ValueError, KeyError):
                continue  # a foreign or broken file: ignore it
            self._mem.put_many(dict(zip(keys, vecs, strict=True)))
            self._loaded.add(shard.name)

    def get_many(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found = self._mem.get_many(hashes)
        if len(found) < len(hashes):
            self._refresh()
            found = self._mem.get_many(hashes)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        keys = np.array(list(items), dtype="<U64")
        vecs = np.stack([np.asarray(v, dtype=np.float32) for v in items.values()])
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=keys, vecs=vecs)
        name = f"{hashlib.sha1(keys.tobytes()).hexdigest()[:16]}.npz"
        os.replace(tmp, self.dir / name)
        self._loaded.add(name)
        self._mem.put_many(items)

    def __len__(self) -> int:
        return len(self._mem)
