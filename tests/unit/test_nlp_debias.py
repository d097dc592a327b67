"""The one de-biasing rule (nlp.debias) and the miner's injectable stages, without the model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlp.debias import LanguageDebiaser, map_coordinates, remove_group_means
from nlp.pipeline import Miner, MinerConfig
from nlp.stages import DebiasState
from nlp.types import EMBEDDING_DIM, NoteIn, Statement


def _two_topics_two_languages(seed: int = 0) -> tuple[np.ndarray, list[str], list[int]]:
    """Topic directions plus a strong per-language offset (bigger than the topic signal)."""
    rng = np.random.default_rng(seed)
    topic = rng.normal(size=(2, EMBEDDING_DIM))
    lang = 3 * rng.normal(size=(2, EMBEDDING_DIM))
    rows, langs, topics = [], [], []
    for li, code in enumerate(("en", "pl")):
        for t in (0, 1):
            for _ in range(20):
                rows.append(topic[t] + lang[li] + 0.3 * rng.normal(size=EMBEDDING_DIM))
                langs.append(code)
                topics.append(t)
    x = np.asarray(rows, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), langs, topics


def test_removing_language_means_makes_topic_the_nearest_neighbour() -> None:
    x, langs, topics = _two_topics_two_languages()
    raw_nn = (x @ x.T - 2 * np.eye(len(x))).argmax(1)
    assert np.mean([langs[j] == langs[i] for i, j in enumerate(raw_nn)]) == 1.0
    y = remove_group_means(x, langs)
    assert y.dtype == np.float32 and np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-5)
    nn = (y @ y.T - 2 * np.eye(len(y))).argmax(1)
    assert np.mean([topics[j] == topics[i] for i, j in enumerate(nn)]) > 0.95


def test_function_and_fitted_debiaser_agree_and_unseen_language_gets_global_mean() -> None:
    x, langs, _ = _two_topics_two_languages(1)
    deb = LanguageDebiaser()
    means, g = deb.fit(x, langs)
    assert np.allclose(deb.transform(x, langs, means, g), remove_group_means(x, langs), atol=1e-6)
    # a language seen once moves little: its mean is shrunk towards the global mean
    x1 = np.vstack([x, x[:1]])
    means1, g1 = deb.fit(x1, [*langs, "et"])
    assert np.linalg.norm(means1["et"] - g1) < 0.1 * np.linalg.norm(x[0] - g1)
    # unseen at fit time: the global mean alone
    only = deb.transform(x[:1], ["fi"], means, g)
    want = (x[0] - g) / np.linalg.norm(x[0] - g)
    assert np.allclose(only[0], want, atol=1e-5)


def test_map_coordinates_are_scaled_stable_in_sign_and_follow_topic() -> None:
    x, langs, topics = _two_topics_two_languages(2)
    xy, explained = map_coordinates(x, langs)
    assert xy.shape == (len(x), 2) and np.isclose(np.abs(xy).max(), 1.0)
    assert 0 < explained[1] <= explained[0] <= 1
    first = xy[:, 0]
    t = np.asarray(topics)
    assert abs(first[t == 0].mean() - first[t == 1].mean()) > 0.5  # axis 1 separates topics
    xy2, _ = map_coordinates(x[::-1].copy(), langs[::-1])
    assert np.allclose(xy2[::-1], xy, atol=1e-5)  # row order does not flip the map
    assert map_coordinates(x[:2], langs[:2])[0].shape == (2, 2)


class _ConstantClusterer:
    """Everything in one theme: shows an injected stage is used as given."""

    def fit(self, Y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        c = Y.mean(0, keepdims=True)
        return np.zeros(len(Y), np.int64), c / np.linalg.norm(c)


class _FixedKinds:
    def classify(
        self, texts: Sequence[str], langs: Sequence[str], embeddings: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        return [("lesson", 0.9)] * len(texts)


class _DeclaredLanguage:
    def detect(
        self, texts: Sequence[str], declared: Sequence[str | None] | None = None
    ) -> list[str]:
        return [d or "en" for d in (declared or [None] * len(texts))]

    def warm(self) -> None:
        return None


def test_miner_uses_injected_stages() -> None:
    x, langs, _ = _two_topics_two_languages(3)
    miner = Miner(
        None,
        MinerConfig(min_theme_size=2),
        language=_DeclaredLanguage(),
        clusterer=_ConstantClusterer(),
        kinds=_FixedKinds(),
    )
    notes = [
        NoteIn(id=f"n{i}", text=f"Statement number {i} about shared bikes.", language=lg)
        for i, lg in enumerate(langs)
    ]
    sts: list[Statement] = miner.segment(notes, unit="statement")
    assert [s.language for s in sts] == langs
    res = miner.mine(sts, embeddings=x)
    assert len(res.themes) == 1 and res.themes[0].size == len(x)
    assert {s.kind for s in sts} == {"lesson"}
    assert res.themes[0].practices and res.model.params["tag"] == "e5s-q1"
    state = DebiasState.from_model(
        res.model.language_means, res.model.global_mean, res.model.params
    )
    assert set(state.language_means) == {"en", "pl"}
    assert miner.assign(sts[:3], x[:3], res.model) == [res.themes[0].id] * 3


def test_kind_offsets_remove_phrasing_shared_across_topics() -> None:
    from nlp.debias import fit_kind_offsets, remove_kind_offsets

    rng = np.random.default_rng(4)
    topics = rng.normal(size=(6, 64))
    phrasing = {"recommendation": 2.0 * rng.normal(size=64), "lesson": 2.0 * rng.normal(size=64)}
    rows, kinds, tops = [], [], []
    for t in range(6):
        for k in ("recommendation", "lesson"):
            for _ in range(5):
                rows.append(topics[t] + phrasing[k] + 0.3 * rng.normal(size=64))
                kinds.append(k)
                tops.append(t)
    Z = np.asarray(rows, np.float32)
    Z -= Z.mean(0)

    ta, ka = np.asarray(tops), np.asarray(kinds)
    same_group = (ta[:, None] == ta[None, :]) & (ka[:, None] == ka[None, :])

    def same_topic_neighbour(Y: np.ndarray) -> float:
        """Outside its own (topic, kind) group: is the nearest statement the same topic
        in the other kind, or the same kind on another topic?"""
        S = np.where(same_group, -2.0, Y @ Y.T)
        return float(np.mean([tops[j] == tops[i] for i, j in enumerate(S.argmax(1))]))

    before = same_topic_neighbour(Z / np.linalg.norm(Z, axis=1, keepdims=True))
    assert before < 0.5  # phrasing wins before
    names = ("lesson", "recommendation", "other")
    off = fit_kind_offsets(Z, kinds, names, shrink=0.0)
    assert np.allclose(off[2], 0)  # a kind nobody has moves nothing
    after = remove_kind_offsets(Z, kinds, names, off)
    assert np.allclose(np.linalg.norm(after, axis=1), 1, atol=1e-5)
    assert same_topic_neighbour(after) > before and same_topic_neighbour(after) > 0.95
    # shrinking towards "no offset": a large prior leaves the vectors almost as they were
    tiny = fit_kind_offsets(Z, kinds, names, shrink=1e6)
    assert float(np.abs(tiny).max()) < 1e-3


def test_shipped_phrasing_basis_is_orthonormal_and_removed_completely() -> None:
    from nlp.debias import phrasing_basis, remove_phrasing
    from nlp.stages import StatementDebiaser

    P = phrasing_basis()
    assert P is not None and P.shape == (3, EMBEDDING_DIM)
    assert np.allclose(P @ P.T, np.eye(3), atol=1e-4)
    x, langs, _ = _two_topics_two_languages(5)
    y = remove_phrasing(x, P, weight=1.0)
    assert np.abs(y @ P.T).max() < 1e-4 and np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-5)
    sts = [
        Statement(str(i), str(i), "t", lg, "other", 1, None, str(i)) for i, lg in enumerate(langs)
    ]
    deb = StatementDebiaser()
    state = deb.fit(x, sts)
    assert "phrasing_basis" in state.params()  # stored with the model for later assignment
    again = DebiasState.from_model(
        state.language_means, state.global_mean, {"debias": state.params()}
    )
    assert np.allclose(deb.transform(x, sts, again), deb.transform(x, sts, state), atol=1e-5)
