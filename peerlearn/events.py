"""The event vocabulary: one name per event, shared by every writer and projector.

The workflows decide which events happen, the activities append them, and the
projectors in ``peerlearn.projections`` turn them into read models. All three
import the names from here, so a typo is an ``AttributeError`` at import time
instead of a silently missing projection. The values are the strings stored in
the ``events`` table and in saved workflow histories: never rename a value,
add a new member instead.

Pure Python with no imports beyond the standard library, so the deterministic
workflow sandbox can load it.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every event type the service writes."""

    # programme stream
    PROGRAMME_CREATED = "ProgrammeCreated"
    PROGRAMME_UPDATED = "ProgrammeUpdated"
    # cycle stream: lifecycle
    CYCLE_STARTED = "CycleStarted"
    CYCLE_PAUSED = "CyclePaused"
    CYCLE_RESUMED = "CycleResumed"
    CYCLE_CANCELLED = "CycleCancelled"
    CYCLE_COMPLETED = "CycleCompleted"
    # cycle stream: meetings
    MEETING_SCHEDULED = "MeetingScheduled"
    MEETING_MOVED = "MeetingMoved"
    HOST_SWAPPED = "HostSwapped"
    MEETING_CANCELLED = "MeetingCancelled"
    MEETING_HELD = "MeetingHeld"
    SELF_ASSESSMENT_REQUESTED = "SelfAssessmentRequested"
    SELF_ASSESSMENT_SUBMITTED = "SelfAssessmentSubmitted"  # the host's answers (issue 13)
    PREPARATION_PACK_SENT = "PreparationPackSent"
    # cycle stream: notes
    NOTES_SUBMITTED = "NotesSubmitted"
    REMINDER_SENT = "ReminderSent"
    NOTES_OVERDUE = "NotesOverdue"
    NOTE_WINDOW_CLOSED = "NoteWindowClosed"
    THEMES_UPDATED = "ThemesUpdated"
    NOTE_REJECTED = "NoteRejected"  # accepted by the API, refused by storage for good
    NOTE_CORRECTED = "NoteCorrected"  # issue 12: a new version of a note's text
    NOTE_WITHDRAWN = "NoteWithdrawn"  # issue 12: the author took the note back
    NOTE_VISIBILITY_CHANGED = "NoteVisibilityChanged"  # facilitators | programme | public
    NOTE_ERASED = "NoteErased"  # issue 12: tombstone of an erasure (no text)
    # cycle stream: wrap-up
    WRAP_UP_PUBLISHED = "WrapUpPublished"
    FOLLOW_UP_DUE = "FollowUpDue"
    ACTION_ITEM_ADDED = "ActionItemAdded"  # issue 13: an action plan's item
    ACTION_ITEM_UPDATED = "ActionItemUpdated"  # its status, due date or a progress note
    FEEDBACK_ACKNOWLEDGED = "FeedbackAcknowledged"  # issue 13: the host read the peers' feedback
    TOPICS_PROPOSED = "TopicsProposed"  # issue 13: the manager's ballot for a meeting
    TOPIC_VOTED = "TopicVoted"  # one partner organisation's vote (a later one replaces it)
    FOCUS_TOPICS_SET = "FocusTopicsSet"  # the winners become the meeting's focus topics
    # mining stream
    THEMES_MINED = "ThemesMined"
    THEME_CREATED = "ThemeCreated"
    THEME_MERGED = "ThemeMerged"
    THEME_SPLIT = "ThemeSplit"
    THEME_RETIRED = "ThemeRetired"
    THEME_CHANGED = "ThemeChanged"  # a theme change of a kind newer than this vocabulary
    # mining stream: analyst curation (issue 11), re-applied after every re-mine
    THEME_RENAMED = "ThemeRenamed"  # title set, pinned or not
    THEMES_MERGED_BY_ANALYST = "ThemesMergedByAnalyst"
    STATEMENTS_MOVED = "StatementsMoved"  # to an existing or a new theme
    STATEMENT_KIND_CORRECTED = "StatementKindCorrected"
    STATEMENT_HIDDEN = "StatementHidden"  # hidden or shown again


class UnknownEventType(ValueError):
    """An event whose type is not in the vocabulary reached a projector."""


def event_type(name: str) -> EventType:
    """The member for a stored type name; unknown names are an error, never skipped."""
    try:
        return EventType(name)
    except ValueError as exc:
        raise UnknownEventType(f"unknown event type {name!r}") from exc
