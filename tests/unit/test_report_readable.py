"""A report a funder can read (issue 11 item 7): names instead of ids, local
dates to the minute, plurals, each source once, English glosses beside other
languages, action items owned by the partner they name."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from peerlearn.readside.report import (
    MinedTotals,
    MiningContext,
    Names,
    Report,
    extract_action_items,
    mining_sections,
    owner_named,
    plural,
    render_html,
    render_markdown,
)

NAMES = Names(
    organisations={"umea-energy": "Umeå Energikluster", "gdansk-port": "Pomorski Klaster Morski"},
    meetings={"c1/visit-1": "Peer visit to Umeå", "visit-1": "Peer visit to Umeå"},
    cycles={"c1": "Resilient clusters 2026"},
    programme="Nordic Cluster Exchange",
    time_zone="Europe/Stockholm",
)
GLOSS = {
    "english_statement_id": "n9#1",
    "english_text": "We called each member firm during the crisis.",
    "similarity": 0.71,
    "label": "similar English statement (not a translation)",
}


def _member(sid: str, note: str, org: str, lang: str, text: str) -> dict[str, Any]:
    return {
        "statement_id": sid,
        "note_id": note,
        "meeting_id": "visit-1",
        "cycle_id": "c1",
        "programme_id": "p",
        "organisation_id": org,
        "date": date(2026, 3, 2),
        "language": lang,
        "text": text,
    }


def _idea() -> dict[str, Any]:
    sv = "Vi ringde varje medlemsföretag under krisen."
    pl = "Dzwoniliśmy do każdej firmy w czasie kryzysu."
    return {
        "id": "Pabc",
        "theme_id": "t1",
        "theme_label": "Member engagement in a crisis",
        "kind": "best_practice",
        "audience": None,
        "statement_id": "n1#1",
        "text": sv,
        "language": "sv",
        "support_cycles": 1,
        "support_organisations": 2,
        "wordings": {
            "sv": {"statement_id": "n1#1", "text": sv, "gloss": GLOSS},
            "pl": {"statement_id": "n2#1", "text": pl, "gloss": GLOSS},
        },
        # two statements of one partner at one meeting on one day: one source
        "sources": [
            _member("n1#1", "n1", "umea-energy", "sv", sv),
            _member("n1#2", "n1b", "umea-energy", "sv", sv),
            _member("n2#1", "n2", "gdansk-port", "pl", pl),
        ],
        "note_id": "n1",
        "meeting_id": "visit-1",
        "cycle_id": "c1",
        "programme_id": "p",
        "organisation_id": "umea-energy",
        "source_date": date(2026, 3, 2),
    }


def _report() -> Report:
    theme = {
        "id": "t1",
        "label": "crisis, member, call",
        "title": "Member engagement in a crisis",
        "keyphrases": ["personal calls"],
        "size": 1,
        "languages": {"sv": 1},
        "organisations": 1,
        "cycles": 1,
    }
    ctx = MiningContext(
        themes=[theme],
        recurrence={},
        practices=[_idea()],
        previous_cycle_id=None,
        previous_themes=[],
        totals=MinedTotals(statements=1, assigned=1, languages=1, notes=1, organisations=1),
    )
    themes, recs, _ = mining_sections(ctx, NAMES)
    return Report(
        title="Lessons learnt — Nordic Cluster Exchange",
        cycle_id="c1",
        programme_id="p",
        summary=None,
        mined=ctx.totals,
        themes=themes,
        recommendations=recs,
    )


def test_plurals() -> None:
    assert plural(1, "note") == "1 note"
    assert plural(2, "note") == "2 notes"
    assert plural(0, "organisation") == "0 organisations"


def test_dates_in_the_programme_zone_without_microseconds() -> None:
    at = datetime(2026, 3, 2, 9, 0, 12, 345678, tzinfo=UTC)
    assert NAMES.when(at) == "2026-03-02 10:00 CET"
    assert NAMES.when(at, time=False) == "2026-03-02"
    assert NAMES.when("2026-07-01T08:30:00.123456+00:00") == "2026-07-01 10:30 CEST"
    assert NAMES.when(date(2026, 3, 2)) == "2026-03-02"


def test_names_sources_once_and_glosses_in_markdown_and_html() -> None:
    report = _report()
    theme = report.themes[0]
    assert theme.label == "Member engagement in a crisis"  # the title, not a lemma triple
    practice = theme.practices[0]
    assert [s.organisation for s in practice.sources] == [
        "Umeå Energikluster",
        "Pomorski Klaster Morski",
    ]
    assert practice.sources[0].meeting == "Peer visit to Umeå"
    md = render_markdown(report)
    assert "1 statement (sv 1); said in 1 cycle by 1 organisation." in md
    assert "1 statement mined from 1 note by 1 organisation in 1 language." in md
    assert "umea-energy" not in md and "visit-1" not in md
    assert md.count("_similar English statement (not a translation):_") == 2  # sv and pl
    assert "  - pl: Dzwoniliśmy" in md
    page = render_html(report)
    assert page.count("similar English statement (not a translation)") == 2
    assert "Umeå Energikluster" in page and "umea-energy" not in page


def test_action_items_owned_by_the_partner_they_name(t0: datetime) -> None:
    partners = NAMES.organisations
    assert owner_named("Umeå Energikluster sends the template", partners, "x") == "umea-energy"
    assert owner_named("gdansk-port books the hall", partners, "x") == "gdansk-port"
    assert owner_named("share the template", partners, "x") == "x"
    both = "Umeå Energikluster and gdansk-port meet"
    assert owner_named(both, partners, "x") == "x"  # two named: the author keeps it
    note = {
        "id": "n1",
        "text": "Action: Pomorski Klaster Morski sends the budget template",
        "author_organisation": "umea-energy",
        "meeting_id": "visit-1",
    }
    meeting = {"id": "visit-1", "title": "Peer visit to Umeå", "state": "held"}
    meeting |= {"kind": "site_visit", "host": "umea-energy"}
    items = extract_action_items([meeting], [note], t0, partners)
    assert [(i.owner, i.what) for i in items] == [
        ("umea-energy", "Action plan answering the peers' recommendations from Peer visit to Umeå"),
        ("gdansk-port", "Pomorski Klaster Morski sends the budget template"),
    ]
