"""Practice ranking: support across cycles and organisations ranks first."""

from __future__ import annotations

import numpy as np

from nlp.practices import audience_of, rank_practices


def _unit(*rows: list[float]) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_no_statements_no_practices() -> None:
    assert rank_practices("t", [], [], [], [], [], [], np.zeros((0, 3))) == []


def test_a_practice_said_by_two_cycles_outranks_a_lone_one() -> None:
    emb = _unit([1, 0, 0], [0.99, 0.05, 0], [0, 1, 0])
    rows = rank_practices(
        "t",
        ["a", "b", "c"],
        ["lesson", "lesson", "lesson"],
        ["Shared matchmaking works", "Matchmaking works", "Unrelated"],
        ["en", "en", "en"],
        ["c1", "c2", "c1"],
        ["o1", "o2", "o1"],
        emb,
    )
    by_id = {r.statement_id: r for r in rows}
    assert by_id["a"].support_cycles == 2 and by_id["a"].support_organisations == 2
    assert by_id["c"].support_cycles == 1
    assert rows[-1].statement_id == "c"
    assert [r.rank for r in rows] == [1, 2, 3]


def test_best_practice_kind_breaks_a_tie() -> None:
    emb = _unit([1, 0], [0, 1])
    rows = rank_practices(
        "t", ["x", "y"], ["lesson", "best_practice"], ["a", "b"], ["en", "en"],
        ["c1", "c2"], ["o1", "o2"], emb,
    )  # fmt: skip
    assert rows[0].statement_id == "y"


def test_audience_follows_the_language_cues() -> None:
    assert audience_of("Funders should keep the grant flexible", "en") == "funders"
    assert audience_of("Varje klusterorganisation bör internt utbilda", "sv") == "organisations"
    assert audience_of("Future partnerships should visit early", "en") == "future_partnerships"
