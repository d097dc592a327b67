"""Removing the language signal from multilingual embeddings.

Measured on SIB-200 and on our own notes: raw multilingual-e5-small vectors
group by language before topic. We subtract, per language, a shrunk language
mean (languages with few statements move little, so a lone Estonian note is not
erased into the origin) plus the global mean, then optionally project out the
subspace spanned by the language offsets, and re-normalise. The means are kept
in the ``ThemeModel`` so new statements are transformed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class LanguageDebiaser:
    def __init__(self, shrink: float = 10.0, project: bool = True) -> None:
        self.shrink = shrink
        self.project = project

    def fit(self, X: np.ndarray, langs: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-language vectors to subtract, and the global mean (for unseen languages)."""
        X = np.asarray(X, dtype=np.float32)
        g = X.mean(0) if len(X) else np.zeros(X.shape[1], np.float32)
        L = np.asarray(langs)
        means: dict[str, np.ndarray] = {}
        for lang in sorted(set(langs)):
            m = np.equal(L, lang)
            n = int(m.sum())
            w = n / (n + self.shrink)
            means[lang] = (g + w * (X[m].mean(0) - g)).astype(np.float32)
        return means, g.astype(np.float32)

    @staticmethod
    def basis(means: dict[str, np.ndarray], g: np.ndarray) -> np.ndarray | None:
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
        X = np.asarray(X, dtype=np.float32)
        sub = np.stack([means.get(lang, g) for lang in langs]) if len(X) else X
        Y = X - sub
        if self.project if project is None else project:
            P = self.basis(means, g)
            if P is not None:
                Y = Y - (Y @ P.T) @ P
        return _normalise(Y)
