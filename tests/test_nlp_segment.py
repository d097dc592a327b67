"""Segmentation, language id, lemmas and kinds: the stages that need no embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp.kinds import KindClassifier
from nlp.langid import LanguageIdentifier
from nlp.lexicon import content_lemmas
from nlp.segment import Segmenter

FIXTURES = Path(__file__).parent / "fixtures" / "nlp"

NOTES = {
    "en": """Lessons from the study visit

What worked:
- Pairing each newcomer with a mentor worked very well.
- Short summaries after every session kept everyone informed.

1. Translating the materials took longer than planned.
2) Some partners could not join the online calls because of firewalls.
""",
    "sv": """Lärdomar från besöket

Det här fungerade:
* Mentorskapet fungerade mycket bra för de nya partnerna.
* Korta sammanfattningar efter varje möte höll alla informerade.

1. Översättningen av materialet tog längre tid än planerat.
2) Några partner kunde inte delta i onlinemötena på grund av brandväggar.
""",
    "pl": """Wnioski z wizyty studyjnej

Co się sprawdziło:
• Łączenie nowych partnerów z mentorami bardzo dobrze się sprawdziło.
• Krótkie podsumowania po każdym spotkaniu informowały wszystkich na bieżąco.

1. Tłumaczenie materiałów trwało dłużej, niż planowaliśmy.
2) Niektórzy partnerzy nie mogli dołączyć do spotkań online z powodu zapór sieciowych.
""",
}


@pytest.mark.parametrize("lang", sorted(NOTES))
def test_bullets_and_numbered_items_are_statements_with_headings(lang: str) -> None:
    segs = Segmenter().split(NOTES[lang], lang)
    assert len(segs) == 4, [s.text for s in segs]
    assert [s.position for s in segs] == [1, 2, 3, 4]
    # headings are context, never statements
    assert segs[0].heading is not None and segs[0].heading.endswith(
        ("worked", "fungerade", "sprawdziło")
    )
    assert all(not s.text.endswith(":") for s in segs)
    # markers are stripped
    assert all(s.text[:1] not in "-*•12" for s in segs)
    assert segs[3].text[:1].isupper()


def test_prose_is_split_into_sentences_and_fragments_are_merged() -> None:
    text = (
        "The budget rules differ between countries. This caused confusion at the start. Yes.\n"
        "Partners found the online platform hard to use, especially older volunteers.\n"
    )
    segs = Segmenter().split(text, "en")
    texts = [s.text for s in segs]
    assert texts[0] == "The budget rules differ between countries."
    assert texts[1] == "This caused confusion at the start. Yes."
    assert texts[2].startswith("Partners found")


def test_wrapped_bullet_lines_stay_one_statement() -> None:
    text = (
        "- Translation of the toolkit took far longer than planned\n"
        "  and delayed the workshops.\n"
        "- Next item here is fine."
    )
    segs = Segmenter().split(text, "en")
    assert len(segs) == 2
    assert segs[0].text.endswith("delayed the workshops.")


def test_language_id_per_statement_on_a_mixed_note() -> None:
    lid = LanguageIdentifier()
    texts = [
        "The mentoring scheme keeps working well for newcomers.",
        "Vi behöver fortfarande bättre översättningar av materialet.",
        "Tłumaczenie materiałów trwało dłużej, niż planowaliśmy.",
        "Die Übersetzung der Unterlagen hat zu Verzögerungen geführt.",
        "Materjalide tõlkimine põhjustas pikki viivitusi.",
    ]
    assert lid.detect(texts) == ["en", "sv", "pl", "de", "et"]
    # a declared language wins on short or ambiguous text, not over clear evidence
    assert lid.detect(["Ok, bra."], ["sv"]) == ["sv"]
    assert lid.detect([texts[2]], ["en"]) == ["pl"]


def test_lemmas_drop_stop_words() -> None:
    assert content_lemmas("The partners were meeting monthly with the mentors.", "en") == [
        "partner",
        "meet",
        "monthly",
        "mentor",
    ]
    pl = content_lemmas("Partnerzy spotykali się co miesiąc z mentorami.", "pl")
    assert "partner" in pl and "się" not in pl


def test_kind_cues_on_a_small_labelled_set() -> None:
    lines = (FIXTURES / "kinds.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    rows = [r for r in rows if r["language"] in ("en", "sv", "pl", "de")][::3]
    res = KindClassifier().classify([r["text"] for r in rows], [r["language"] for r in rows])
    acc = sum(k == r["kind"] for (k, _), r in zip(res, rows, strict=True)) / len(rows)
    assert acc >= 0.75, acc
    labelled = {k for k, _ in res}
    assert {
        "lesson",
        "recommendation",
        "best_practice",
        "challenge",
        "success",
        "other",
    } <= labelled
