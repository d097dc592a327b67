"""Mail templates and recipient rules (pure functions): every mailed kind has a
template in every shipped language with only known placeholders; a contact's
language picks the template (fallback English); each kind reaches the right people."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from peerlearn import mail
from peerlearn.mail import Audience, Contact, recipients

# Every placeholder peerlearn/mail.py fills in (see _values and plan_row).
KNOWN = {
    "name", "organisation", "programme", "cycle", "time_zone", "reason", "reminder",
    "note_count", "expected", "open_items", "report_id", "notes_due_days", "due",
    "meeting", "meeting_id", "starts", "ends", "host", "location", "topics",
    "target_groups", "missing", "self_assessment", "questions", "meeting_path", "open_list",
    "strengths", "challenges", "lessons", "recommendations", "cycle_path", "overdue_list",
}  # fmt: skip


@pytest.mark.parametrize("language", mail.TEMPLATE_LANGUAGES)
def test_every_kind_has_a_template_with_known_placeholders(language: str) -> None:
    ts = mail.templates(language)
    assert set(ts) == set(mail.RULES), language
    for kind, t in ts.items():
        for text in (t.subject.template, t.body.template):
            used = set(re.findall(r"\$(\w+)", text))
            assert used <= KNOWN, (language, kind, used - KNOWN)
        assert "$name" in t.body.template


def test_language_choice_and_fallback() -> None:
    assert mail.template_language("reminder", "sv") == "sv"
    assert mail.template_language("reminder", "pl-PL") == "pl"
    assert mail.template_language("reminder", "fi") == "en"
    lang, subject, body = mail.render(
        "reminder", "de", {"name": "Eva", "reminder": "2", "meeting": "Besuch", "due": "morgen"}
    )
    assert lang == "de" and subject.startswith("Erinnerung 2") and body.startswith("Guten Tag Eva")
    lang, subject, _ = mail.render("reminder", "fi", {"reminder": "1"})
    assert lang == "en" and subject.startswith("Reminder 1")
    # a placeholder without a value stays visible instead of raising
    assert "$meeting" in mail.render("invitation", "en", {})[1]


PEOPLE = [
    Contact("Anna", "anna@a.se", "sv", "coordinator", "a"),
    Contact("Axel", "axel@a.se", "sv", "host_contact", "a"),
    Contact("Bea", "bea@b.pl", "pl", "participant", "b"),
    Contact("Bo", "bo@b.pl", "pl", "host_contact", "b"),
    Contact("Cleo", "cleo@c.de", "de", "coordinator", "c"),
    Contact("Fay", "fay@esca.org", "en", "facilitator", None),
    Contact("Max", "max@esca.org", "en", "manager", None),
]


def _emails(cs: list[Contact]) -> list[str]:
    return [c.email for c in cs]


def test_recipient_rules() -> None:
    everyone = ["a", "b", "c"]
    assert _emails(recipients(Audience.PARTICIPANTS, PEOPLE, partners=["a", "c"])) == [
        "anna@a.se", "axel@a.se", "cleo@c.de", "fay@esca.org", "max@esca.org",
    ]  # fmt: skip
    assert _emails(recipients(Audience.HOST, PEOPLE, partners=everyone, host="b")) == ["bo@b.pl"]
    # no host_contact: the coordinator
    assert _emails(recipients(Audience.HOST, PEOPLE, partners=everyone, host="c")) == ["cleo@c.de"]
    # reminders only to the partners with no note, and to their note writers
    missing = recipients(Audience.MISSING_NOTES, PEOPLE, partners=everyone, missing=["a", "b"])
    assert _emails(missing) == ["anna@a.se", "bea@b.pl"]
    assert _emails(recipients(Audience.MANAGERS, PEOPLE, partners=everyone)) == [
        "fay@esca.org", "max@esca.org",
    ]  # fmt: skip
    follow = recipients(Audience.FOLLOW_UP, PEOPLE, partners=everyone)
    assert _emails(follow) == ["fay@esca.org", "max@esca.org", "anna@a.se", "cleo@c.de"]
    # one message per address even when a person has two roles
    dup = [*PEOPLE, Contact("Anna again", "ANNA@a.se", "sv", "participant", "a")]
    assert _emails(recipients(Audience.EVERYONE, dup, partners=everyone)).count("anna@a.se") == 1


def test_message_id_is_stable_and_distinct() -> None:
    a = mail.message_id_for("cyc:3", "Anna@a.se", "", "example.org")
    assert a == mail.message_id_for("cyc:3", "anna@a.se", "", "example.org")
    assert a != mail.message_id_for("cyc:3", "bea@b.pl", "", "example.org")
    assert a != mail.message_id_for("cyc:4", "anna@a.se", "", "example.org")
    assert a != mail.message_id_for("cyc:3", "anna@a.se", "visit-1", "example.org")
    assert re.fullmatch(r"<pl\.[0-9a-f]{40}@example\.org>", a)


def test_built_message_carries_headers_and_calendar() -> None:
    msg = mail.build_message(
        sender="peerlearn <noreply@example.org>",
        contact=PEOPLE[0],
        subject="Inbjudan: Besök",
        body="Hej Anna\n",
        message_id="<pl.x@example.org>",
        date=datetime(2031, 1, 1, tzinfo=UTC),
        language="sv",
        outbox_id="cyc:1",
        kind="invitation",
        ics=("REQUEST", b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"),
    )
    assert msg["Message-ID"] == "<pl.x@example.org>" and msg["Content-Language"] == "sv"
    cal = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert cal and cal[0].get_param("method") == "REQUEST"
    assert any(p.get_filename() == "invite.ics" for p in msg.walk())
    assert mail.valid_email("a.b+c@x-y.example.org") and not mail.valid_email("a@b")


def test_programme_contacts_tolerate_rows_without_contacts() -> None:
    row = {
        "partners": [
            {"id": "a", "name": "A"},  # written before contacts existed
            {"id": "b", "contacts": [{"name": "Bea", "email": "bea@b.pl", "role": "participant"}]},
        ],
        "facilitators": ["Facilitation team", {"name": "Max", "email": "max@x.org"}],
    }
    assert mail.programme_contacts(row) == [
        Contact("Bea", "bea@b.pl", "en", "participant", "b"),
        Contact("Max", "max@x.org", "en", "facilitator", None),
    ]
