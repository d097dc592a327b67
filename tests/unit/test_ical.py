"""The calendar side of invitations: one UID per meeting for life, SEQUENCE raised
on every change, METHOD:CANCEL on cancel, a feed with no METHOD (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from icalendar import Calendar

from peerlearn.events import EventType
from peerlearn.ical import CalendarContext, LogEvent, feed, fold_meetings, invitation, meeting_uid

T0 = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
CTX = CalendarContext(
    domain="example.org",
    organizer_email="peerlearn@example.org",
    cycle_title="Peer reviews 2031",
    partner_names={"vaxa": "Växa Cluster", "lodz": "Łódź agency"},
    attendees=[("Anna Berg", "anna@vaxa.se"), ("Jan Nowak", "jan@lodz.pl")],
)


def _plan(mid: str, start: datetime, host: str | None = None) -> dict[str, Any]:
    return {
        "meeting_id": mid,
        "kind": "site_visit" if host else "kickoff",
        "title": f"Meeting {mid}",
        "host": host,
        "format": "on_site" if host else "online",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=8)).isoformat(),
        "topics": ["innovation support"],
        "participants": [],
    }


def _log() -> list[LogEvent]:
    started = {
        "meetings": [_plan("kickoff", T0), _plan("visit-1", T0 + timedelta(days=30), "vaxa")]
    }
    return [
        LogEvent(EventType.CYCLE_STARTED, 1, started, T0 - timedelta(days=10)),
        LogEvent(EventType.PREPARATION_PACK_SENT, 2, {"meeting_id": "kickoff"}, T0),
        LogEvent(
            EventType.MEETING_MOVED,
            3,
            {
                "meeting_id": "visit-1",
                "starts_at": (T0 + timedelta(days=31)).isoformat(),
                "ends_at": (T0 + timedelta(days=31, hours=8)).isoformat(),
            },
            T0 + timedelta(days=1),
        ),
        LogEvent(
            EventType.MEETING_MOVED,
            4,
            {
                "meeting_id": "visit-1",
                "starts_at": (T0 + timedelta(days=32)).isoformat(),
                "ends_at": (T0 + timedelta(days=32, hours=8)).isoformat(),
            },
            T0 + timedelta(days=2),
        ),
        LogEvent(
            EventType.HOST_SWAPPED,
            5,
            {"meeting_id": "visit-1", "from": "vaxa", "host": "lodz"},
            T0 + timedelta(days=3),
        ),
        LogEvent(
            EventType.MEETING_CANCELLED,
            6,
            {"meeting_id": "kickoff", "reason": "merged into visit 1"},
            T0 + timedelta(days=4),
        ),
    ]


def _event(ics: bytes) -> tuple[str | None, Any]:
    cal = Calendar.from_ical(ics)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 1
    method = cal.get("METHOD")
    return (str(method) if method is not None else None), events[0]


def test_sequence_rises_on_every_move_and_swap_uid_stays() -> None:
    log = _log()
    seqs, uids, starts = [], set(), []
    for v in (1, 3, 4, 5):
        m = fold_meetings("c1", log, upto_version=v)["visit-1"]
        method, ev = _event(invitation(m, CTX)[1])
        assert method == "REQUEST"
        seqs.append(int(ev["SEQUENCE"]))
        uids.add(str(ev["UID"]))
        starts.append(ev.decoded("DTSTART"))
    assert seqs == [0, 1, 2, 3]
    assert uids == {meeting_uid("c1", "visit-1", "example.org")} == {"c1.visit-1@example.org"}
    assert starts[0] == T0 + timedelta(days=30) and starts[2] == T0 + timedelta(days=32)
    # the swap changed the location, not the time
    last = fold_meetings("c1", log, upto_version=5)["visit-1"]
    _, ev = _event(invitation(last, CTX)[1])
    assert str(ev["LOCATION"]) == "Łódź agency" and ev.decoded("DTSTART") == starts[2]


def test_cancel_is_method_cancel_with_the_same_uid_and_a_higher_sequence() -> None:
    before = fold_meetings("c1", _log(), upto_version=5)["kickoff"]
    after = fold_meetings("c1", _log())["kickoff"]
    method, ics = invitation(after, CTX)
    assert method == "CANCEL"
    m, ev = _event(ics)
    assert m == "CANCEL" and str(ev["STATUS"]) == "CANCELLED"
    assert str(ev["UID"]) == "c1.kickoff@example.org"
    assert int(ev["SEQUENCE"]) == before.sequence + 1 == 1
    assert _event(invitation(before, CTX)[1])[0] == "REQUEST"


def test_invitation_is_byte_identical_when_rebuilt() -> None:
    """A re-send after a crash must carry the same calendar: DTSTAMP is the
    event's time, not the clock."""
    m = fold_meetings("c1", _log(), upto_version=3)["visit-1"]
    assert invitation(m, CTX) == invitation(m, CTX)
    _, ev = _event(invitation(m, CTX)[1])
    assert ev.decoded("DTSTAMP") == T0 + timedelta(days=1)
    attendees = [str(a) for a in ev.get("ATTENDEE")]
    assert attendees == ["mailto:anna@vaxa.se", "mailto:jan@lodz.pl"]
    assert str(ev["ORGANIZER"]) == "mailto:peerlearn@example.org"


def test_feed_lists_every_meeting_without_method() -> None:
    cal = Calendar.from_ical(feed(fold_meetings("c1", _log()).values(), CTX, name="x"))
    assert cal.get("METHOD") is None
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {"c1.kickoff@example.org", "c1.visit-1@example.org"}
    assert str(events["c1.kickoff@example.org"]["STATUS"]) == "CANCELLED"
    assert events["c1.visit-1@example.org"].decoded("SEQUENCE") == 3
    assert "ORGANIZER" not in events["c1.visit-1@example.org"]


def test_cycle_cancelled_cancels_open_meetings() -> None:
    log = _log() + [LogEvent(EventType.CYCLE_CANCELLED, 7, {"reason": "x"}, T0)]
    folded = fold_meetings("c1", log)
    assert folded["visit-1"].cancelled and folded["visit-1"].sequence == 4
    assert folded["kickoff"].sequence == 1  # already cancelled: unchanged
