"""Removing the language signal from multilingual embeddings: the ONE rule.

Measured on SIB-200 and on our own notes: raw multilingual-e5-small vectors
group by language before topic. The rule, used by the miner, by the stored
theme-map projection and by the API's map, is:

* subtract, per group (language), a *shrunk* group mean
  ``g + n/(n+shrink)·(mean_group − g)`` where ``g`` is the global mean: a
  language with few statements moves little, so a lone Estonian note is not
  erased into the origin; a group unseen at fit time gets ``g`` alone;
* optionally project out the subspace spanned by the group offsets
  (off by default: plain centring did as well or better on SIB-200);
* re-normalise to unit rows, so cosine stays a dot product.

The fitted means are stored in the ``ThemeModel`` so statements that arrive
later are transformed the same way (``LanguageDebiaser.transform``).

Public API (small on purpose, everyone calls these):

* ``remove_group_means(vectors, groups, shrink=10.0) -> (n, d) unit rows``
* ``map_coordinates(vectors, languages) -> ((n, 2) coords, explained)``
* ``LanguageDebiaser`` (fit/transform, for the miner's stored model)
* ``phrasing_basis()`` / ``remove_phrasing(Z, basis)``: topic, not phrasing.
  After language centring, the miner projects out a 3-dimensional phrasing
  subspace: the directions in which lessons, recommendations, challenges ...
  differ from other statements *about the same topic*, learnt once on the
  labelled kind set (``bench/phrasing_basis.py`` writes
  ``nlp/phrasing_basis.json``). So "we recommend X" moves towards "X"
  whatever kind the classifier gives it. Measured by ``bench/topic_phrasing.py``
  and ``bench/mining_quality.py``.
* ``fit_kind_offsets`` / ``remove_kind_offsets``: the alternative measured and
  not used by default: kind means estimated on the corpus being mined carry
  that corpus's topics whenever kinds and topics correlate (SIB-200 dev V
  0.500 -> 0.412 at shrink 10, 0.467 at shrink 200 with the learnt classifier).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Prior weight of the global mean in each group's mean (in statements).
DEFAULT_SHRINK = 10.0
#: How many phrasing directions are projected out. Measured in-process on
#: SIB-200 dev (eng/swe/pol, mean of 3 seeds; language only: V 0.500, ARI 0.265)
#: and bench/topic_phrasing.py (margin = topic-over-phrasing cosine gap, language
#: only +0.331): rank 3: V 0.498, ARI 0.280, margin +0.417; rank 5: V 0.450,
#: ARI 0.218, margin +0.434.
PHRASING_RANK = 3
#: Share of the phrasing component removed. Halving it (rather than removing
#: it all) measured better on SIB-200 dev in-process (V 0.499 vs 0.498, ARI
#: 0.285 vs 0.280, translation agreement 0.929 vs 0.916; language only 0.500 /
#: 0.265 / 0.919), for a smaller gain on bench/topic_phrasing.py (cosine margin
#: +0.393 vs +0.417, V-kind at granularity 3: 0.072 vs 0.061; language only
#: +0.331 / 0.118).
PHRASING_WEIGHT = 0.5
PHRASING_BASIS_PATH = Path(__file__).resolve().parent / "phrasing_basis.json"
_basis_cache: dict[tuple[str, int], np.ndarray | None] = {}


def phrasing_basis(
    rank: int = PHRASING_RANK, path: Path = PHRASING_BASIS_PATH
) -> np.ndarray | None:
    """(rank, d) orthonormal phrasing directions, or None when the file is absent."""
    key = (str(path), rank)
    if key not in _basis_cache:
        try:
            rows = json.loads(Path(path).read_text(encoding="utf-8"))["basis"][:rank]
            _basis_cache[key] = np.asarray(rows, dtype=np.float32) if rows else None
        except FileNotFoundError:
            _basis_cache[key] = None
    return _basis_cache[key]


def remove_phrasing(
    Z: np.ndarray, basis: np.ndarray | None, weight: float = PHRASING_WEIGHT
) -> np.ndarray:
    """``Z`` with ``weight`` of its component in the phrasing subspace removed, as unit rows."""
    Z = np.asarray(Z, dtype=np.float32)
    if basis is not None and len(basis) and len(Z):
        P = np.asarray(basis, dtype=np.float32)
        Z = Z - weight * (Z @ P.T) @ P
    return _normalise(Z) if len(Z) else Z


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def fit_group_means(
    X: np.ndarray, groups: Sequence[str], shrink: float = DEFAULT_SHRINK
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-group vectors to subtract (shrunk towards the global mean) and the global mean."""
    X = np.asarray(X, dtype=np.float32)
    g = X.mean(0) if len(X) else np.zeros(X.shape[1] if X.ndim == 2 else 0, np.float32)
    G = np.asarray(list(groups))
    means: dict[str, np.ndarray] = {}
    for grp in sorted(set(groups)):
        m = np.equal(G, grp)
        n = int(m.sum())
        w = n / (n + shrink)
        means[grp] = (g + w * (X[m].mean(0) - g)).astype(np.float32)
    return means, g.astype(np.float32)


def remove_group_means(
    vectors: np.ndarray, groups: Sequence[str], *, shrink: float = DEFAULT_SHRINK
) -> np.ndarray:
    """Fit and apply the miner's rule in one go: (n, d) float32 unit rows.

    ``groups`` is aligned with ``vectors`` (usually the statement languages).
    """
    X = np.asarray(vectors, dtype=np.float32)
    if len(X) == 0:
        return X.reshape(0, X.shape[1] if X.ndim == 2 else 0)
    means, g = fit_group_means(X, groups, shrink)
    return _normalise(X - np.stack([means[grp] for grp in groups]))


def map_coordinates(
    vectors: np.ndarray, languages: Sequence[str]
) -> tuple[np.ndarray, list[float]]:
    """2-D map of statements: PCA of the de-biased vectors (topics, not languages).

    Returns ``(coords, explained)``: coords (n, 2) float64 scaled so the largest
    absolute coordinate is 1; each axis' sign fixed (largest loading positive)
    so the map does not flip between data versions; ``explained`` is the share
    of variance on each axis. Fewer than three statements: all zeros.
    """
    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2)), [0.0, 0.0]
    x = remove_group_means(vectors, languages).astype(np.float64)
    x -= x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    coords = x @ comps.T
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((n, 2 - coords.shape[1]))])
    scale = float(np.abs(coords).max())
    coords = coords / (scale if scale > 0 else 1.0)
    var = s**2
    tot = float(var.sum())
    explained = [float(v / tot) if tot > 0 else 0.0 for v in var[:2]]
    explained += [0.0] * (2 - len(explained))
    return coords, explained


def fit_kind_offsets(
    Z: np.ndarray, kinds: Sequence[str], names: Sequence[str], shrink: float = DEFAULT_SHRINK
) -> np.ndarray:
    """(len(names), d) shrunk offsets of each kind's mean from the overall mean of ``Z``.

    ``Z`` is language-centred (not re-normalised). A kind with few statements
    moves little; a kind absent from ``kinds`` gets a zero offset.
    """
    Z = np.asarray(Z, dtype=np.float32)
    out = np.zeros((len(names), Z.shape[1] if Z.ndim == 2 else 0), np.float32)
    if len(Z) == 0:
        return out
    mu = Z.mean(0)
    K = np.asarray(list(kinds))
    for i, name in enumerate(names):
        m = np.equal(K, name)
        n = int(m.sum())
        if n:
            out[i] = (n / (n + shrink)) * (Z[m].mean(0) - mu)
    return out


def remove_kind_offsets(
    Z: np.ndarray, kinds: Sequence[str], names: Sequence[str], offsets: np.ndarray
) -> np.ndarray:
    """``Z`` minus each row's kind offset (unknown kinds: none), as unit rows."""
    Z = np.asarray(Z, dtype=np.float32)
    if len(Z) == 0 or len(offsets) == 0:
        return _normalise(Z) if len(Z) else Z
    pos = {k: i for i, k in enumerate(names)}
    sub = np.stack(
        [offsets[pos[k]] if k in pos else np.zeros(Z.shape[1], np.float32) for k in kinds]
    )
    return _normalise(Z - sub)


class LanguageDebiaser:
    """The rule as a fitted transform, so the miner can store and re-apply it."""

    def __init__(self, shrink: float = DEFAULT_SHRINK, project: bool = False) -> None:
        self.shrink = shrink
        self.project = project

    def fit(self, X: np.ndarray, langs: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-language vectors to subtract, and the global mean (for unseen languages)."""
        return fit_group_means(X, langs, self.shrink)

    @staticmethod
    def basis(means: dict[str, np.ndarray], g: np.ndarray) -> np.ndarray | None:
        """Orthonormal rows spanning the language offsets (None with fewer than two)."""
        if len(means) < 2:
            return None
        offs = np.stack([v - g for v in means.values()])
        _, s, vt = np.linalg.svd(offs, full_matrices=False)
        keep = s > 1e-4 * max(float(s.max()), 1e-12)
        return vt[keep].astype(np.float32) if keep.any() else None

    def transform(
        self,
        X: np.ndarray,
        langs: Sequence[str],
        means: dict[str, np.ndarray],
        g: np.ndarray,
        project: bool | None = None,
    ) -> np.ndarray:
        return _normalise(self.centre(X, langs, means, g, project))

    def centre(
        self,
        X: np.ndarray,
        langs: Sequence[str],
        means: dict[str, np.ndarray],
        g: np.ndarray,
        project: bool | None = None,
    ) -> np.ndarray:
        """``transform`` before re-normalising (what the kind offsets are fitted on)."""
        X = np.asarray(X, dtype=np.float32)
        sub = np.stack([means.get(lang, g) for lang in langs]) if len(X) else X
        Y = X - sub
        if self.project if project is None else project:
            P = self.basis(means, g)
            if P is not None:
                Y = Y - (Y @ P.T) @ P
        return Y
