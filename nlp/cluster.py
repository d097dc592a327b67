"""Clustering de-biased statement embeddings into themes.

Spherical k-means (unit vectors, k-means++ seeded, several restarts, fixed
seed → deterministic), with k chosen by the silhouette (cosine) over a range
that grows with the number of statements; ``granularity`` scales that choice.
Clusters smaller than ``min_size`` are dissolved and their statements moved to
the nearest remaining centroid when similar enough, else left unassigned
(outliers) — so almost everything lands in a theme, unlike density-based
clustering which leaves a third of short texts as noise.
"""

from __future__ import annotations

import math

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def _kmeans(Y: np.ndarray, k: int, seed: int, n_init: int = 4) -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed, max_iter=200)
    labels = km.fit_predict(Y)
    return labels.astype(np.int64), _normalise(km.cluster_centers_), float(km.inertia_)


def _silhouette(Y: np.ndarray, labels: np.ndarray, seed: int, sample: int = 2000) -> float:
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2:
        return -1.0
    n = len(Y)
    kw = {"sample_size": sample, "random_state": seed} if n > sample else {}
    return float(silhouette_score(Y, labels, metric="cosine", **kw))


class Clusterer:
    def __init__(self, granularity: float = 1.0, min_size: int = 3, outlier_threshold: float = 0.15,
                 k_min: int = 2, k_max: int | None = None) -> None:
        self.granularity = granularity
        self.min_size = min_size
        self.outlier_threshold = outlier_threshold
        self.k_min = k_min
        self.k_max = k_max
        self.last_scores: dict[int, float] = {}

    def k_range(self, n: int) -> list[int]:
        hi = self.k_max or max(self.k_min, int(round(2.0 * math.sqrt(n / 2))))
        hi = min(hi, max(1, n // max(self.min_size, 1)))
        lo = min(self.k_min, hi)
        return list(range(lo, hi + 1))

    def fit(self, Y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Labels (−1 = outlier) and unit centroids indexed by label."""
        n = len(Y)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros((0, Y.shape[1] if Y.ndim == 2 else 384), np.float32)
        if n < 2 * self.min_size:
            return np.zeros(n, np.int64), _normalise(Y.mean(0, keepdims=True))
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        self.last_scores = {}
        for k in self.k_range(n):
            labels, cents, _ = _kmeans(Y, k, seed)
            s = _silhouette(Y, labels, seed)
            self.last_scores[k] = s
            if best is None or s > best[0]:
                best = (s, k, labels, cents)
        assert best is not None
        _, k, labels, cents = best
        target = max(1, int(round(k * self.granularity)))
        if target != k:
            labels, cents, _ = _kmeans(Y, min(target, n), seed)
        return self._tidy(Y, labels, cents)

    def _tidy(self, Y: np.ndarray, labels: np.ndarray, cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes = np.bincount(labels[labels >= 0], minlength=len(cents))
        keep = np.flatnonzero(sizes >= self.min_size)
        if len(keep) == 0:
            keep = np.array([int(sizes.argmax())])
        # relabel by first appearance so ids do not depend on k-means' internal order
        cents = cents[keep]
        sims = Y @ cents.T
        new = sims.argmax(1)
        ok = sims[np.arange(len(Y)), new] >= self.outlier_threshold
        kept_member = np.isin(labels, keep)
        remap = {int(old): i for i, old in enumerate(keep)}
        out = np.where(kept_member, np.array([remap.get(int(v), -1) for v in labels]), new)
        out = np.where(kept_member | ok, out, -1)
        # recompute centroids from final members
        cents = np.stack([
            Y[out == c].mean(0) if (out == c).any() else cents[c] for c in range(len(keep))
        ])
        order: list[int] = []
        for v in out.tolist():
            if v >= 0 and v not in order:
                order.append(v)
        order += [c for c in range(len(keep)) if c not in order]
        pos = {c: i for i, c in enumerate(order)}
        out = np.array([pos[v] if v >= 0 else -1 for v in out.tolist()], dtype=np.int64)
        return out, _normalise(cents[order])
