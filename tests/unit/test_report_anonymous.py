"""Reports that describe their sources instead of naming them (issue 12,
``sources=anonymous``): every organisation name and id in sources, practices
and action items becomes "a <role> partner [in <country>] (partner X)",
stable per organisation within one report, in Markdown, HTML and JSON alike."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from peerlearn.readside.report import (
    ActionItem,
    MinedTotals,
    MiningContext,
    Names,
    Report,
    _named,
    mining_sections,
    render_html,
    render_markdown,
)

NAMED = ("Umeå Energikluster", "umea-energy", "Pomorski Klaster Morski", "gdansk-port", "lodz")


def _names() -> Names:
    return Names(
        organisations={
            "umea-energy": "Umeå Energikluster",
            "gdansk-port": "Pomorski Klaster Morski",
            "lodz": "Łódź Textile Hub",
        },
        partners={
            "umea-energy": {"role": "frontrunner", "country": "SE"},
            "gdansk-port": {"role": "follower"},
        },  # lodz: nothing known but its name
        meetings={"visit-1": "Peer visit to Umeå Energikluster"},
        programme="Nordic Cluster Exchange",
        anonymous=True,
    )


def _member(sid: str, org: str, text: str) -> dict[str, Any]:
    return {
        "statement_id": sid, "note_id": sid.split("#")[0], "meeting_id": "visit-1",
        "cycle_id": "c1", "programme_id": "p", "organisation_id": org,
        "date": date(2026, 3, 2), "language": "en", "text": text,
    }  # fmt: skip


def _report(names: Names) -> Report:
    text = "Like Umeå Energikluster, call every member firm during a crisis."
    idea: dict[str, Any] = {
        "id": "P1", "theme_id": "t1", "theme_label": "Crisis", "kind": "best_practice",
        "audience": None, "statement_id": "n1#1", "text": text, "language": "en",
        "support_cycles": 1, "support_organisations": 2, "wordings": {},
        "sources": [_member("n1#1", "umea-energy", text), _member("n2#1", "gdansk-port", text)],
        "note_id": "n1", "meeting_id": "visit-1", "cycle_id": "c1", "programme_id": "p",
        "organisation_id": "umea-energy", "source_date": date(2026, 3, 2),
    }  # fmt: skip
    theme = {"id": "t1", "label": "crisis", "title": "Crisis", "keyphrases": [], "size": 2,
             "languages": {"en": 2}, "organisations": 2, "cycles": 1}  # fmt: skip
    ctx = MiningContext(
        themes=[theme], recurrence={}, practices=[idea], previous_cycle_id=None,
        previous_themes=[], totals=MinedTotals(statements=2, assigned=2, languages=1, notes=2,
                                               organisations=2),
    )  # fmt: skip
    themes, recs, _ = mining_sections(ctx, names)
    items = [
        ActionItem("a1", "lodz", "Ask Pomorski Klaster Morski for the crisis script", None,
                   "visit-1", "c1"),
    ]  # fmt: skip
    return Report(
        title="Lessons learnt — Nordic Cluster Exchange", cycle_id="c1", programme_id="p",
        summary=None, mined=ctx.totals, themes=themes, recommendations=recs,
        action_items=_named(items, names),
    )  # fmt: skip


def test_anonymous_report_names_no_organisation_in_any_format() -> None:
    report = _report(_names())
    practice = report.themes[0].practices[0]
    umea, gdansk = (s.organisation for s in practice.sources)
    assert umea == "a frontrunner partner in SE (partner A)"
    assert gdansk == "a follower partner (partner B)"
    assert practice.text == f"Like {umea}, call every member firm during a crisis."
    [item] = report.action_items
    assert item.owner == item.owner_name == "a partner organisation (partner C)"
    assert item.what == f"Ask {gdansk} for the crisis script"
    assert item.meeting_title == f"Peer visit to {umea}"  # same alias, same organisation
    for body in (render_markdown(report), render_html(report), json.dumps(report.to_json())):
        for name in NAMED:
            assert name.casefold() not in body.casefold(), name
        assert "partner A" in body and "partner C" in body


def test_named_report_is_unchanged() -> None:
    names = _names()
    names.anonymous = False
    report = _report(names)
    md = render_markdown(report)
    assert "Umeå Energikluster" in md and "partner A" not in md
    assert report.action_items[0].owner == "lodz"
