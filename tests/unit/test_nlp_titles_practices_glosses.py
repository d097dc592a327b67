"""Readable titles, one idea per practice and English glosses: pure functions, no model."""

from __future__ import annotations

import numpy as np

from nlp.glosses import GLOSS_LABEL, english_glosses
from nlp.practices import group_practices, practice_id
from nlp.titles import theme_titles

AUDITS = [
    ("en", "We recommend offering free energy audits to small firms."),
    ("en", "Small firms rarely booked the energy audits in spring."),
    ("en", "The cluster offered free energy audits to twenty small firms."),
    ("pl", "Zalecamy bezpłatne audyty energetyczne dla małych firm."),
    ("pl", "Małe firmy rzadko zamawiały audyty energetyczne."),
]
TURNOVER = [
    ("en", "We recommend a handover file because staff turnover is high."),
    ("en", "High staff turnover meant that knowledge was lost."),
    ("sv", "Hög personalomsättning gjorde att kunskap gick förlorad."),
    ("sv", "Vi rekommenderar en överlämningsmapp eftersom personalomsättningen är hög."),
]


def test_titles_are_shared_surface_phrases_in_english_and_per_language() -> None:
    audits, turnover = theme_titles([AUDITS, TURNOVER])
    assert audits.title_language == "en"
    assert audits.title.lower() in ("free energy audits", "energy audits", "small firms")
    assert len(audits.title.split()) >= 2  # a phrase, not a lemma list
    assert "," not in audits.title
    assert "audyty energetyczne" in audits.titles["pl"].lower()
    assert turnover.title.lower() == "staff turnover"
    assert "personalomsättning" in turnover.titles["sv"].lower()
    # keyphrases are words people wrote, across languages; phrasing words are not topics
    assert any("audyty" in k or "audyt" in k for k in audits.keyphrases)
    assert not any("recommend" in k for k in audits.keyphrases + turnover.keyphrases)


def test_theme_without_english_is_titled_in_its_main_language() -> None:
    (only,) = theme_titles([[lg_text for lg_text in TURNOVER if lg_text[0] == "sv"]])
    assert only.title_language == "sv" and "en" not in only.titles
    # the word both statements share, inside a short phrase of the statements' own words
    assert "personalomsättning" in only.title.lower() and 2 <= len(only.title.split()) <= 3


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_idea_in_three_languages_is_one_practice_with_support_counted_once() -> None:
    rng = np.random.default_rng(0)
    idea_a, idea_b = rng.normal(size=(2, 64))
    noise = 0.25 * rng.normal(size=(6, 64))
    V = _unit(np.vstack([idea_a, idea_a, idea_a, idea_a, idea_b, idea_b]) + noise)
    ids = ["s1", "s2", "s3", "s4", "s5", "s6"]
    practices = group_practices(
        ids=ids,
        kinds=["lesson", "lesson", "lesson", "recommendation", "recommendation", "recommendation"],
        texts=[
            "We learned X.",
            "Vi lärde oss X.",
            "Nauczyliśmy się X.",
            "We learned X again.",
            "Do Y.",
            "Gör Y.",
        ],
        languages=["en", "sv", "pl", "en", "en", "sv"],
        organisations=["org-a", "org-b", "org-a", "org-a", "org-c", None],
        cycles=["c1", "c1", "c2", "c1", "c1", "c1"],
        vectors=V,
    )
    assert len(practices) == 2
    a = practices[0]
    assert sorted(a.statement_ids) == ["s1", "s2", "s3", "s4"]
    assert a.kind == "lesson" and a.title_language == "en" and a.title.startswith("We learned X")
    assert set(a.wordings) == {"en", "sv", "pl"} and a.wordings["sv"] == "Vi lärde oss X."
    assert a.support_organisations == 2 and a.support_cycles == 2
    assert a.id == practice_id(["s4", "s3", "s2", "s1"])  # stable: from the member ids only
    b = practices[1]
    assert b.support_organisations == 2  # a member without an organisation counts as its own


def test_practices_of_nothing_and_of_one() -> None:
    assert group_practices([], [], [], [], [], [], np.zeros((0, 8))) == []
    (p,) = group_practices(
        ["x"], ["lesson"], ["Vi lärde oss."], ["sv"], [None], [None], np.ones((1, 8))
    )
    assert p.title_language == "sv" and p.support_organisations == 1


def test_glosses_pick_the_closest_english_statement_of_the_same_theme_above_a_threshold() -> None:
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(3, 32))
    V = _unit(np.vstack([a, b, a + 0.1 * c, b + 0.1 * c, c, a]))
    glosses = english_glosses(
        ids=["en1", "en2", "sv1", "pl1", "de1", "en3"],
        languages=["en", "en", "sv", "pl", "de", "en"],
        texts=["A in English", "B in English", "A på svenska", "B po polsku", "C", "A other theme"],
        themes=["t1", "t1", "t1", "t1", "t1", "t2"],
        vectors=V,
    )
    assert glosses["sv1"].english_statement_id == "en1"  # en3 is closer-equal but in t2
    assert glosses["pl1"].english_text == "B in English"
    assert glosses["sv1"].label == GLOSS_LABEL and "not a translation" in GLOSS_LABEL
    assert "de1" not in glosses  # nothing English close enough
    assert "en1" not in glosses  # English statements get no gloss
