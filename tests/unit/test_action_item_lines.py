"""Action items of the wrap-up report, from meetings and note lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from peerlearn.readside.report import extract_action_items


def _note(text: str, nid: str = "n1", org: str = "vaxa", mid: str = "kick") -> dict[str, Any]:
    return {"id": nid, "text": text, "author_organisation": org, "meeting_id": mid}


def _meeting(
    mid: str, state: str = "held", kind: str = "site_visit", host: str | None = "lodz"
) -> dict[str, Any]:
    return {"id": mid, "state": state, "kind": kind, "host": host}


def test_each_held_site_visit_owes_its_host_an_action_plan(t0: datetime) -> None:
    items = extract_action_items(
        [_meeting("v1"), _meeting("v2", state="scheduled"), _meeting("k", kind="kickoff")], [], t0
    )
    assert [(i.id, i.owner, i.meeting_id) for i in items] == [("plan-v1", "lodz", "v1")]
    assert items[0].due_at == t0.isoformat()


def test_action_todo_and_checkbox_lines_become_items(t0: datetime) -> None:
    text = "We met.\nAction: share the template\n- [ ] book the hall\nTODO: call Tartu\nno action"
    items = extract_action_items([], [_note(text)], t0)
    assert [i.what for i in items] == ["share the template", "book the hall", "call Tartu"]
    assert {i.owner for i in items} == {"vaxa"}
    assert [i.id for i in items] == ["note-n1-1", "note-n1-2", "note-n1-3"]


def test_markers_are_case_insensitive_and_empty_actions_are_dropped(t0: datetime) -> None:
    items = extract_action_items([], [_note("ACTION:   \naction: Dela mallen")], t0)
    assert [i.what for i in items] == ["Dela mallen"]


def test_the_word_action_inside_a_sentence_is_not_an_item(t0: datetime) -> None:
    assert extract_action_items([], [_note("The action plan: good.\nTake action now")], t0) == []
